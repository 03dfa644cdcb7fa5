#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: issues 9 / 5, the decode GEMV's per-call W rows (MOE_GROUPED_GEMM_GEMV_WROWS=auto)
# and m-tile map (MOE_GEMV_TILE_MAP=on), and the one-round-trip offsets walk again (MOE_EXPERT_TILES_WALK=parallel).
#   GPU 1, in the background: the touched test classes (ConcurrentCaptureTests; the GEMV's W rows, tile map, expert tiles).
#   GPU 0: the GEMV builds' registers from the device's NVRTC; `sweep moe_layer` at T=1 per variant, twice, alternating
#   (base first and last); `sweep grouped_gemm` at T=1 for base / auto / map; the GEMV trace of Qwen3 T=1, base and auto.
# Stdout: registers, "row | variant..." tables (us), traces, test totals and failures. Logs in $OUT/gemv9.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-gemv9; mkdir -p "$out"
trap 'tar czf "$OUT/gemv9.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
bash .gpu/run.sh true

(CUDA_VISIBLE_DEVICES=1 timeout 300 $T -class MoeRuntime.Tests.Accelerators.ConcurrentCaptureTests -class $K.GroupedGemmGemvWRowsTests \
  -class $K.GroupedGemmGemvTileMapTests -class $K.GroupedGemmGemvExpertTilesTests -class $K.GroupedGemmGemvTests \
  -class MoeRuntime.Tests.Kernels.PermuteTileMapTests > "$out/tests.log" 2>&1; echo "exit $?" >> "$out/tests.log") &
tests=$!

echo "== registers (device NVRTC), grouped_gemm_gemv_bf16_bf16 / f16_f16:"
for o in "" "-DGV_WROWS=8" "-DGV_TILE_MAP" "-DGV_WROWS=8 -DGV_TILE_MAP"; do
  echo "  [$o]"; LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu python3 tools/nvrtc-resources.py src/Kernels/GroupedGemm/grouped_gemm_gemv.cu sm_90 \
    --filter "grouped_gemm_gemv_(bf16_bf16|f16_f16)" $o 2>&1 | tail -2
done

source tools/gpu/ab-table.sh
# Each variant spelled out in full (the defaults changed after this run: map on, W rows auto, as automap).
declare -A envs=([base]="MOE_GROUPED_GEMM_GEMV_WROWS=4 MOE_GEMV_TILE_MAP=off" [auto]="MOE_GROUPED_GEMM_GEMV_WROWS=auto MOE_GEMV_TILE_MAP=off"
  [map]="MOE_GROUPED_GEMM_GEMV_WROWS=4 MOE_GEMV_TILE_MAP=on" [automap]="MOE_GROUPED_GEMM_GEMV_WROWS=auto MOE_GEMV_TILE_MAP=on"
  [walk]="MOE_EXPERT_TILES_WALK=parallel MOE_GROUPED_GEMM_GEMV_WROWS=4 MOE_GEMV_TILE_MAP=off")
layer_order=(base auto map automap walk base2 auto2 map2 automap2 walk2 base3)
for v in "${layer_order[@]}"; do
  left=$((560 - SECONDS)); (( left < 40 )) && { echo "== layer $v skipped (${SECONDS}s)"; continue; }
  if [ "$v" = base ]; then limit=150; else limit=40; fi; (( limit > left )) && limit=$left
  env ${envs[${v%[23]}]} MOE_SWEEP_TOKENS=1 timeout "$limit" $B sweep moe_layer --device cuda:0 --json "$out/layer-$v.json" > "$out/layer-$v.log" 2>&1
  echo "== layer $v (${envs[${v%[23]}]:-defaults}): exit $? (${SECONDS}s)"
done
done_layers=(); for v in "${layer_order[@]}"; do [ -s "$out/layer-$v.log" ] && done_layers+=("$v"); done
ab_table "$out" layer "${done_layers[@]}"

for v in base auto map; do
  left=$((560 - SECONDS)); (( left < 40 )) && { echo "== gemm $v skipped"; continue; }
  env ${envs[$v]} MOE_SWEEP_TOKENS=1 timeout 45 $B sweep grouped_gemm --device cuda:0 --json "$out/gemm-$v.json" > "$out/gemm-$v.log" 2>&1
  echo "== gemm $v: exit $? (${SECONDS}s)"
done
ab_table "$out" gemm base auto map | head -60

for v in base auto; do
  (( SECONDS > 540 )) && { echo "== trace $v skipped"; continue; }
  env ${envs[$v]} MOE_GROUPED_GEMM_GEMV_TRACE=1 MOE_SWEEP_TOKENS=1 MOE_SWEEP_MODELS=qwen3 timeout 25 $B sweep grouped_gemm \
    --device cuda:0 > "$out/trace-$v.log" 2>&1
  echo "== GEMV trace, Qwen3 T=1, $v: exit $? (${SECONDS}s)"
  grep -E "^gemv trace|^  " "$out/trace-$v.log" | head -16
done

wait $tests
echo "== tests (GPU 1): $(tail -1 "$out/tests.log")"
grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -40; grep -E "Total:" "$out/tests.log"
echo "== done in ${SECONDS}s"
