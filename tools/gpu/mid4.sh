#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh (fourth session of 2026-11-30, mid-session run):
#   1. grouped GEMM tests on CUDA (the new decode128/decode256 tiles are in GroupedGemm.Variants), combine tests;
#   2. grouped_gemm sweep, Mixtral T=16, decode tile BK 64 / 128 / 256 (MOE_GROUPED_GEMM_DECODE_BK);
#   3. token_ops sweep (combine/permute at the layer's decode sizes, combine chunks A/B);
#   4. tools/gpu/twoshot5-check.sh with a 230 s budget.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-mid4; mkdir -p "$out"
trap 'tar czf "$OUT/mid4.tgz" -C "$out" .' EXIT
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -2
timeout 150 $T -class MoeRuntime.Tests.Kernels.GroupedGemmTests -class MoeRuntime.Tests.Kernels.CombineTests > "$out/tests.log" 2>&1
echo "== tests: exit $?"; grep -E "\[FAIL\]" -A 4 "$out/tests.log" | cut -c1-300 | head -20; grep -E "Total:" "$out/tests.log"
for bk in 64 128 256; do
  MOE_GROUPED_GEMM_DECODE_BK=$bk MOE_SWEEP_MODELS=mixtral MOE_SWEEP_TOKENS=16 timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/gg-bk$bk.log" 2>&1
  echo "== decode BK $bk: exit $?"; grep -E "^\| mixtral" "$out/gg-bk$bk.log" | cut -c1-150
done
timeout 120 $B sweep token_ops --device cuda:0 --json "$out/token_ops.json" > "$out/token_ops.log" 2>&1
echo "== token_ops: exit $?"; grep -E "layer|combine \(un|T=8192 H=7168 k=8" "$out/token_ops.log" | cut -c1-150
echo "== twoshot5 (${SECONDS}s so far)"
TWOSHOT5_BUDGET=230 bash tools/gpu/twoshot5-check.sh
cp /tmp/moe-twoshot5/*.csv "$out/" 2>/dev/null
