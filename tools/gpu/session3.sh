#!/usr/bin/env bash
# GPU machine with 2 GPUs, after tools/gpu/pack.sh: the third session's runs of 2026-11-30 in two calls.
#   bash tools/gpu/session3.sh a   two-shot LL with and without MOE_LL_FENCE (5 runs of the LL class each), the scale
#                                  model's sweeps and validation (scale10-check.sh), routing/permute (route3-check.sh)
#   bash tools/gpu/session3.sh b   GEMV and grouped GEMM tests, then PyTorch's grouped GEMM and layer references with
#                                  our sweeps in the same run (final-session.sh sweeps)
# Logs in $OUT; summaries on stdout.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
case ${1:?a or b} in
a)
  mkdir -p "$OUT/ll"
  for fence in 0 1; do
    for i in 1 2 3 4 5; do
      MOE_LL_TWOSHOT=1 MOE_LL_FENCE=$fence timeout 45 $T -class MoeRuntime.Tests.Collectives.LowLatencyAllReduceTests > "$OUT/ll/fence$fence-$i.log" 2>&1
      echo "LL two-shot fence=$fence run $i: exit $? $(grep -oE 'Failed: [0-9]+' "$OUT/ll/fence$fence-$i.log")"
    done
  done
  bash tools/gpu/scale10-check.sh 2>&1 | tail -40
  bash tools/gpu/route3-check.sh 2>&1 | tail -60
  ;;
b)
  timeout 200 $T -class MoeRuntime.Tests.Kernels.GroupedGemmGemvTests -class MoeRuntime.Tests.Kernels.GroupedGemmTests > "$OUT/gemv-tests.log" 2>&1
  echo "== GEMV + grouped GEMM tests: exit $?"; grep -E "\[FAIL\]" -A 6 "$OUT/gemv-tests.log" | head -30; grep -E "Total:" "$OUT/gemv-tests.log"
  bash tools/gpu/final-session.sh sweeps 2>&1 | tail -80
  ;;
esac
