#!/usr/bin/env bash
# GPU machine, one GPU (cuda:0), after tools/gpu/pack.sh: the grouped GEMM's tests, then A/B runs for issue 9.
#   decode (T=1, 16): the heuristic (the GEMV kernel at T=1) against the mma.sync decode tile with its split-K;
#   prefill (DeepSeek-V3 at T=8192): plain tiles of 256 adjacent columns against 128 from each half of N
#   (MOE_GROUPED_GEMM_WGMMA_PLAIN_HALVES=1), each twice (run-to-run spread).
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
sweep decode-auto MOE_SWEEP_TOKENS=1,16
sweep decode-tile MOE_SWEEP_TOKENS=1 MOE_GROUPED_GEMM_VARIANT=decode64
for run in 1 2; do
  sweep prefill-adjacent-$run MOE_SWEEP_TOKENS=8192 MOE_SWEEP_MODELS=deepseek
  sweep prefill-halves-$run MOE_SWEEP_TOKENS=8192 MOE_SWEEP_MODELS=deepseek MOE_GROUPED_GEMM_WGMMA_PLAIN_HALVES=1
done
