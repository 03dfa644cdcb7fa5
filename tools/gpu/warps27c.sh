#!/usr/bin/env bash
# (The switch this script compares was removed after the run; the build it ran is commit 7057987.)
# GPU machine, one H200, after tools/gpu/pack.sh. Twenty-seventh session (issue 9): the decode GEMV with blocks of 4 warps
# (MOE_GROUPED_GEMM_GEMV_WARPS=4: twice the blocks an SM at the same registers) against 8 (the default), `sweep
# grouped_gemm` at T = 1 for all presets, alternating three times; Qwen3-30B-A3B traced under each; the read floor held
# to 4 blocks an SM in the GEMV's 512 blocks (so no block of the next call fits beside it, as with the GEMV); then the
# GEMV and F64 classes under the switch. Logs in $OUT/warps27c.tgz.
set -uo pipefail
out=/tmp/moe-warps27c; mkdir -p "$out"
trap 'tar czf "$OUT/warps27c.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
source tools/gpu/ab-table.sh
declare -A envs=([def]="MOE_GROUPED_GEMM_GEMV_WARPS=8" [w4]="MOE_GROUPED_GEMM_GEMV_WARPS=4")
order=(def.1 w4.1 def.2 w4.2 def.3 w4.3)
for v in "${order[@]}"; do
  env ${envs[${v%.*}]} MOE_SWEEP_TOKENS=1 timeout 90 $B sweep grouped_gemm --device cuda:0 > "$out/t1-$v.log" 2>&1
  echo "== T=1 $v: exit $? (${SECONDS}s)"; grep -E "^\| qwen3.*(down|gate_up) " "$out/t1-$v.log" | grep -v cold | cut -c1-120
done
ab_table "$out" t1 "${order[@]}"
MOE_SWEEP_READ_FLOOR_PER_EXPERT=64 MOE_SWEEP_READ_FLOOR_SHARED_KB=50 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 60 \
  $B sweep grouped_gemm --device cuda:0 > "$out/floor4.log" 2>&1
echo "== read floor, 512 blocks held to 4 an SM: exit $? (${SECONDS}s)"; grep -E "read floor" "$out/floor4.log" | cut -c1-170
for v in def w4; do
  [ $((560 - SECONDS)) -gt 150 ] || { echo "== traces skipped (${SECONDS}s)"; break; }
  env ${envs[$v]} MOE_GROUPED_GEMM_GEMV_TRACE=1 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 45 $B sweep grouped_gemm --device cuda:0 > "$out/trace-$v.log" 2>&1
  echo "== traced $v: exit $? (${SECONDS}s)"; grep -A9 -E "gemv trace .*(down|gate_up) " "$out/trace-$v.log" | head -24
done
left=$((560 - SECONDS)); [ $left -gt 60 ] || { echo "== GEMV classes skipped (${SECONDS}s)"; exit 0; }
MOE_GROUPED_GEMM_GEMV_WARPS=4 timeout $left $T -class $K.GroupedGemmGemvTests -class $K.GroupedGemmGemvSingleRowTests \
  -class $K.GroupedGemmGemvTileMapTests -class $K.GroupedGemmGemvPrefetchTests -class $K.GroupedGemmGemvWRowsTests \
  -class $K.GroupedGemmGemvExpertTilesTests -class $K.GroupedGemmDenseGemvTests -class $K.GroupedGemmTests > "$out/tests.log" 2>&1
echo "== GEMV and F64 classes, 4 warps: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" "$out/tests.log" | head -20; grep -E "Total:" "$out/tests.log" | head -1
echo "== done in ${SECONDS}s"
