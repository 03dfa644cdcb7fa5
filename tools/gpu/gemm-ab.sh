#!/usr/bin/env bash
# GPU machine, one GPU (cuda:0), after tools/gpu/pack.sh: the grouped GEMM's tests, then A/B runs for issue 9.
#   decode (T=1): the GEMV kernel with its default K share per warp (2048) against 1024 and 512;
#   prefill (DeepSeek-V3 at T=8192): the fused gate_up measured before the plain one (MOE_SWEEP_FUSED_FIRST=1).
# SKIP_TESTS=1 skips the tests. Logs in $OUT/gemm-ab.tgz; one line per row on stdout.
set -uo pipefail
out=/tmp/moe-gemm-ab; mkdir -p "$out"
trap 'tar czf "$OUT/gemm-ab.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  timeout 240 $T -class MoeRuntime.Tests.Kernels.GroupedGemmGemvTests -class MoeRuntime.Tests.Kernels.GroupedGemmTests \
    -class MoeRuntime.Tests.Kernels.GroupedGemmSplitKTests -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests > "$out/tests.log" 2>&1
  echo "== grouped GEMM tests: exit $?"; grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -40; grep -E "Total:" "$out/tests.log"
fi
sweep() { # label, env...
  local label=$1; shift
  env "$@" timeout ${SWEEP_TIMEOUT:-90} $B sweep grouped_gemm --device cuda:0 --json "$out/$label.json" > "$out/$label.log" 2>&1
  echo "== $label: exit $?"
  grep -E "T=[0-9]+ " "$out/$label.log" | sed -E 's/ +/ /g' | cut -c1-130
}
sweep gemv-2048 MOE_SWEEP_TOKENS=1
sweep gemv-1024 MOE_SWEEP_TOKENS=1 MOE_GROUPED_GEMM_GEMV_WARP_K=1024
sweep gemv-512 MOE_SWEEP_TOKENS=1 MOE_GROUPED_GEMM_GEMV_WARP_K=512
sweep prefill-fused-first MOE_SWEEP_TOKENS=8192 MOE_SWEEP_MODELS=deepseek MOE_SWEEP_FUSED_FIRST=1
