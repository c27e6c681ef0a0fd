/**
 * Mesa 25's lavapipe (Debian 13's Mesa; `docs/mesa25_crash.md`): registered only where
 * `BRL_MESA25_ICD` names its Vulkan ICD file (`sh bench/mesa25/install.sh` makes
 * `/opt/mesa25/lvp_icd.json`), so that the normal suite neither runs nor skips them. Each test
 * runs a child process on that driver. `BRL_MESA25_STEPS` sets the soak's training steps
 * (default 500; 0.6–0.75 s a step on 2 shared cores, plus ~40 s compiling).
 *
 * Run: `BRL_MESA25_ICD=/opt/mesa25/lvp_icd.json deno test -A tests/tensor/mesa25_test.ts`
 *
 * @module
 */

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ICD = Deno.env.get("BRL_MESA25_ICD");
const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** The environment that puts a child process on the ICD's lavapipe, and that library's path. */
function mesa25(icd: string): { env: Record<string, string>; library: string } {
  const library: string = JSON.parse(Deno.readTextFileSync(icd)).ICD.library_path;
  if (!library.startsWith("/")) {
    throw new TypeError(`BRL_MESA25_ICD "${icd}" must name its library by absolute path`);
  }
  const path = Deno.env.get("LD_LIBRARY_PATH");
  return {
    env: {
      VK_ICD_FILENAMES: icd,
      LD_LIBRARY_PATH: path ? `${dirname(library)}:${path}` : dirname(library),
    },
    library,
  };
}

/** Mapping lines of process `pid` (0 once it has exited). */
function mapLines(pid: number): string[] {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/maps`).split("\n").filter((l) => l.length > 0);
  } catch {
    return [];
  }
}

if (ICD) {
  const { env, library } = mesa25(ICD);

  Deno.test("Mesa 25: bind groups in generations give their mappings back", async () => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", join(ROOT, "tests/tensor/mesa25_probe.ts")],
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    const probe = JSON.parse(new TextDecoder().decode(out.stdout));
    console.log(JSON.stringify(probe));
    assert.equal(probe.lavapipe, library);
    // Made plainly, every group that waits for the collector keeps a mapping.
    assert.ok(probe.plain.after - probe.plain.before >= 2900, JSON.stringify(probe.plain));
    // In generations of 1,000: at most one generation and a submit's groups, none left after.
    const { before, peak, after, created } = probe.generations;
    assert.equal(created, 3000);
    assert.ok(peak - before <= 1300, `peak ${peak - before} mappings above ${before}`);
    assert.ok(after - before <= 100, `${after - before} mappings left above ${before}`);
  });

  Deno.test("Mesa 25: the default training runs its soak without a crash", async () => {
    const steps = Number(Deno.env.get("BRL_MESA25_STEPS") ?? 500);
    const dir = await Deno.makeTempDir({ prefix: "brl_mesa25_soak_" });
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-ffi",
        join(ROOT, "cli/train.ts"),
        "--backend",
        "webgpu",
        "--iters",
        String(steps),
        "--no-eval",
        "--log-every",
        "10",
        "--out",
        dir,
      ],
      env,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let peakMappings = 0;
    let loadsLavapipe = false;
    const sampler = setInterval(() => {
      const lines = mapLines(child.pid);
      peakMappings = Math.max(peakMappings, lines.length);
      loadsLavapipe ||= lines.some((line) => line.endsWith(library));
    }, 1000);
    // Progress lines ("... 120/500 ...") with the time each arrived.
    const progress: { step: number; at: number }[] = [];
    let log = "";
    const decoder = new TextDecoder();
    const stdout = new Response(child.stdout).text();
    for await (const chunk of child.stderr) {
      const text = decoder.decode(chunk, { stream: true });
      log += text;
      for (const match of text.matchAll(new RegExp(` (\\d+)/${steps} `, "g"))) {
        progress.push({ step: Number(match[1]), at: performance.now() });
      }
    }
    const status = await child.status;
    clearInterval(sampler);
    const summary = await stdout;
    await Deno.remove(dir, { recursive: true });
    assert.equal(status.code, 0, `training exited with ${status.code}:\n${log.slice(-2000)}`);
    assert.match(summary, new RegExp(`Trained ${steps} steps`));
    assert.ok(loadsLavapipe, `the training did not load ${library}`);
    // Steps from the 50th on: the first ones compile the kernels.
    const from = progress.find((p) => p.step >= 50)!;
    const to = progress.at(-1)!;
    const secondsPerStep = (to.at - from.at) / 1000 / (to.step - from.step);
    console.log(
      `${steps} steps on ${library}: ${
        secondsPerStep.toFixed(3)
      } s/step (steps ${from.step}-${to.step}), peak ${peakMappings} mappings`,
    );
    assert.ok(peakMappings < 40000, `peak ${peakMappings} mappings`);
  });
}
