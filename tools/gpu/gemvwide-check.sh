#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: issues 5 / 9, the 4-row GEMV for calls of up to 4 rows an expert
# (MOE_GROUPED_GEMM_GEMV_RULE=wide: Mixtral-8x7B at T = 16, DeepSeek-V3 at T = 128) and its block order with an expert's
# m-tiles side by side (MOE_GROUPED_GEMM_GEMV_ORDER=tile: later passes over the same W read L2).
#   GPU 1, in the background: the GEMV's classes under the tile order, the layer's classes under wide + tile.
#   GPU 0: `sweep grouped_gemm` (Mixtral T=16, DeepSeek-V3 T=128): the heuristic, forced onto the 4-row GEMV in column and
#   tile order; `sweep moe_layer` at T = 1, 16, 128 (defaults) and PyTorch's layer in the same run; then the layer per
#   variant, alternating, while the time lasts (LIMIT_S, default 420 s).
# Stdout: tables (us), PyTorch's layer, test totals and failures. Logs in $OUT/gemvwide.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-gemvwide; mkdir -p "$out"
trap 'tar czf "$OUT/gemvwide.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
R=MoeRuntime.Tests.Runtime
LIMIT_S=${LIMIT_S:-420}
SECONDS=0
bash .gpu/run.sh true

(export CUDA_VISIBLE_DEVICES=1
 MOE_GROUPED_GEMM_GEMV_ORDER=tile timeout 150 $T -class $K.GroupedGemmGemvTests -class $K.GroupedGemmGemvWRowsTests -class $K.GroupedGemmGemvTileMapTests \
   -class $K.GroupedGemmGemvExpertTilesTests > "$out/tests-gemv-tile.log" 2>&1
 echo "exit $?" >> "$out/tests-gemv-tile.log"
 MOE_GROUPED_GEMM_GEMV_RULE=wide MOE_GROUPED_GEMM_GEMV_ORDER=tile timeout 200 $T -class $R.MoeLayerTests -class $R.MoeLayerGemvTileMapTests \
   > "$out/tests-layer-wide.log" 2>&1
 echo "exit $?" >> "$out/tests-layer-wide.log") &
tests=$!

source tools/gpu/ab-table.sh
declare -A envs=([base]="" [heuristic]="" [gemv4col]="MOE_GROUPED_GEMM_VARIANT=gemv4" [gemv4tile]="MOE_GROUPED_GEMM_VARIANT=gemv4 MOE_GROUPED_GEMM_GEMV_ORDER=tile"
  [widetile]="MOE_GROUPED_GEMM_GEMV_RULE=wide MOE_GROUPED_GEMM_GEMV_ORDER=tile" [widecol]="MOE_GROUPED_GEMM_GEMV_RULE=wide"
  [tile]="MOE_GROUPED_GEMM_GEMV_ORDER=tile")
for v in heuristic gemv4col gemv4tile; do
  for m in mixtral:16 deepseek:128; do
    env ${envs[$v]} MOE_SWEEP_MODELS=${m%:*} MOE_SWEEP_TOKENS=${m#*:} timeout 90 $B sweep grouped_gemm --device cuda:0 > "$out/gemm-$v-${m%:*}.log" 2>&1
    echo "== gemm $v ${m}: exit $? (${SECONDS}s)"
  done
  cat "$out/gemm-$v-mixtral.log" "$out/gemm-$v-deepseek.log" > "$out/gemm-$v.log"
done
ab_table "$out" gemm heuristic gemv4col gemv4tile | grep -vE "read floor"

export MOE_SWEEP_TOKENS=1,16,128
timeout 150 $B sweep moe_layer --device cuda:0 --json "$out/layer-base.json" > "$out/layer-base.log" 2>&1
echo "== layer base: exit $? (${SECONDS}s)"
(cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out" timeout 90 python3 moe_layer.py > "$out/ref-moe_layer.log" 2>&1)
echo "== torch moe_layer: exit $? (${SECONDS}s)"; tail -11 "$out/ref-moe_layer.log"
order=(widetile widecol tile base2 widetile2 widecol2 tile2 base3)
for v in "${order[@]}"; do
  left=$((LIMIT_S - SECONDS)); (( left < 35 )) && { echo "== layer $v skipped (${SECONDS}s)"; continue; }
  (( left > 70 )) && left=70
  env ${envs[${v%[23]}]} timeout "$left" $B sweep moe_layer --device cuda:0 --json "$out/layer-$v.json" > "$out/layer-$v.log" 2>&1
  echo "== layer $v (${envs[${v%[23]}]:-defaults}): exit $? (${SECONDS}s)"
done
ab_table "$out" layer base "${order[@]}"

wait $tests
for f in tests-gemv-tile tests-layer-wide; do
  echo "== $f (GPU 1): $(tail -1 "$out/$f.log")"
  grep -E "\[FAIL\]" -A 8 "$out/$f.log" | head -30; grep -E "Total:" "$out/$f.log" | tail -1
done
echo "== done in ${SECONDS}s"
