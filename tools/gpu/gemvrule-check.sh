#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: issues 5 / 9, the decode GEMV for any call of no more rows than experts
# (MOE_GROUPED_GEMM_GEMV_RULE=experts: Qwen3-30B-A3B and DeepSeek-V3 at T = 16, where the wgmma kernel runs today).
#   GPU 1, in the background: the GEMV's classes, then the layer's classes under the experts rule.
#   GPU 0: `sweep grouped_gemm` at T = 16 (Qwen3, DeepSeek-V3) with the heuristic's kernels and forced onto the 4-row GEMV;
#   `sweep moe_layer` at T = 16 (Qwen3, DeepSeek-V3) small / experts / small / experts / small.
# Stdout: "row | variant..." tables (us), test totals and failures. Logs in $OUT/gemvrule.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-gemvrule; mkdir -p "$out"
trap 'tar czf "$OUT/gemvrule.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
R=MoeRuntime.Tests.Runtime
SECONDS=0
bash .gpu/run.sh true

(export CUDA_VISIBLE_DEVICES=1
 timeout 150 $T -class $K.GroupedGemmGemvTests -class $K.GroupedGemmGemvWRowsTests -class $K.GroupedGemmGemvTileMapTests > "$out/tests-gemv.log" 2>&1
 echo "exit $?" >> "$out/tests-gemv.log"
 MOE_GROUPED_GEMM_GEMV_RULE=experts timeout 200 $T -class $R.MoeLayerTests -class $R.MoeLayerGemvTileMapTests > "$out/tests-layer-experts.log" 2>&1
 echo "exit $?" >> "$out/tests-layer-experts.log") &
tests=$!

source tools/gpu/ab-table.sh
export MOE_SWEEP_TOKENS=16 MOE_SWEEP_MODELS=qwen3,deepseek
for v in heuristic gemv4; do
  if [ $v = gemv4 ]; then env=MOE_GROUPED_GEMM_VARIANT=gemv4; else env=MOE_GROUPED_GEMM_GEMV_RULE=small; fi  # small: the wgmma kernel
  env $env timeout 120 $B sweep grouped_gemm --device cuda:0 --json "$out/gemm-$v.json" > "$out/gemm-$v.log" 2>&1
  echo "== gemm $v: exit $? (${SECONDS}s)"
done
ab_table "$out" gemm heuristic gemv4 | grep -vE "read floor"

for v in small experts small2 experts2 small3; do
  left=$((560 - SECONDS)); (( left < 30 )) && { echo "== layer $v skipped (${SECONDS}s)"; continue; }
  limit=60; [ "$v" = small ] && limit=150; (( limit > left )) && limit=$left
  MOE_GROUPED_GEMM_GEMV_RULE=${v%[23]} timeout "$limit" $B sweep moe_layer --device cuda:0 --json "$out/layer-$v.json" > "$out/layer-$v.log" 2>&1
  echo "== layer $v: exit $? (${SECONDS}s)"
done
ab_table "$out" layer small experts small2 experts2 small3

wait $tests
for f in tests-gemv tests-layer-experts; do
  echo "== $f (GPU 1): $(tail -1 "$out/$f.log")"
  grep -E "\[FAIL\]" -A 8 "$out/$f.log" | head -30; grep -E "Total:" "$out/$f.log" | tail -1
done
echo "== done in ${SECONDS}s"
