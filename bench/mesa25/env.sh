# Sourced: points Vulkan (and so Deno's WebGPU) at the Mesa 25 lavapipe unpacked by install.sh.
#   . bench/mesa25/env.sh [PREFIX]
MESA25_PREFIX=${1:-/opt/mesa25}
export VK_ICD_FILENAMES="$MESA25_PREFIX/lvp_icd.json"
export LD_LIBRARY_PATH="$MESA25_PREFIX/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
