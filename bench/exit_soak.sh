#!/usr/bin/env bash
# Crash-free exit check (issue 17): runs the README's test command (deno.json's "test" task) N
# times in a row and records, for each run, its exit status, the signal that ended it, the
# suite's summary line and any abort Deno printed ("double free or corruption", "corrupted size
# vs. prev_size", "free(): invalid ...", SIGABRT, SIGSEGV, a panic). Prints a table and
# "K of N runs crashed at exit" (K: runs whose tests all passed but whose process then aborted or
# died by a signal). Exits 0 only when every run was clean.
#
#   bench/exit_soak.sh [N] [LOG_DIR]     N defaults to 20; logs go to runs/exit_soak/<time>/
#
# Each run takes as long as the suite (about 5 minutes on llvmpipe). Set the environment the way
# `.ci/run` does (BRL_REQUIRE_GPU=1, BRL_REQUIRE_NATIVE=1) to soak the same configuration.
# EXIT_SOAK_CMD replaces the test command (to check this script itself).
set -uo pipefail
cd "$(dirname "$0")/.."

runs="${1:-20}"
if ! [[ "$runs" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: bench/exit_soak.sh [N] [LOG_DIR]  (N: runs, a positive integer; got \"$runs\")" >&2
  exit 2
fi
dir="${2:-runs/exit_soak/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$dir"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/brl-xdg}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
# glibc writes its heap-corruption messages to the terminal unless told to use stderr.
export LIBC_FATAL_STDERR_=1 NO_COLOR=1
ulimit -c 0 # no core files

# The test command, read from deno.json so that it stays the README's.
cmd="${EXIT_SOAK_CMD:-$(deno eval --quiet \
  'console.log(JSON.parse(Deno.readTextFileSync("deno.json")).tasks.test)')}"
if [ -z "$cmd" ]; then
  echo "exit_soak: no \"test\" task in deno.json" >&2
  exit 2
fi
echo "exit_soak: $runs runs of: $cmd"
echo "exit_soak: logs in $dir/"

# What an abort looks like in the output: glibc heap checks, fatal signals, Rust panics.
aborts='double free|corrupted size|corrupted double-linked|free\(\): invalid|munmap_chunk|malloc\(\)|malloc_consolidate|Aborted|SIGABRT|SIGSEGV|SIGBUS|Segmentation fault|core dumped|panicked at|Deno has panicked'

rows=()
at_exit=0
crashed=0
failed=0
for ((k = 1; k <= runs; k++)); do
  log="$dir/run-$k.log"
  start=$SECONDS
  # Run directly (not through `deno task`) so that a signal shows in the exit status.
  bash -c "$cmd" >"$log" 2>&1
  rc=$?
  secs=$((SECONDS - start))
  signal="-"
  if [ "$rc" -gt 128 ]; then signal="$(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128)))"; fi
  summary="$(grep -aE '^(ok|FAILED) \| [0-9]+ passed' "$log" | tail -1)"
  tests="$(echo "$summary" | sed -nE 's/^(ok|FAILED) \| ([0-9]+) passed.*\| ([0-9]+) failed.*/\2 passed, \3 failed/p')"
  tests="${tests:-no summary}"
  abort="$(grep -aoE "$aborts" "$log" | head -1)"
  if [ "$rc" -eq 0 ] && [ -z "$abort" ]; then
    verdict="clean"
  elif [ -n "$abort" ] || [ "$signal" != "-" ]; then
    crashed=$((crashed + 1))
    if [[ "$summary" == ok* ]]; then
      verdict="crashed at exit"
      at_exit=$((at_exit + 1))
    else
      verdict="crashed during the run"
    fi
  else
    verdict="tests failed"
    failed=$((failed + 1))
  fi
  rows+=("$(printf '%-4s %-5s %-7s %-24s %-24s %-7s %s' "$k" "$rc" "$signal" "$tests" \
    "${abort:--}" "${secs}s" "$verdict")")
  echo "exit_soak: run $k/$runs: exit $rc, $tests, ${abort:-no abort}, ${secs}s: $verdict"
done

echo
printf '%-4s %-5s %-7s %-24s %-24s %-7s %s\n' run exit signal tests abort time verdict
printf '%s\n' "${rows[@]}"
echo
echo "$at_exit of $runs runs crashed at exit"
echo "($crashed crashed in all, $failed had failing tests; logs in $dir/)"
[ "$crashed" -eq 0 ] && [ "$failed" -eq 0 ]
