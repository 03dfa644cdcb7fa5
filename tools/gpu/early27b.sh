#!/usr/bin/env bash
# (The switch this script compares was removed after the run; the build it ran is commit 7f0fbb4.)
# GPU machine, one H200, after tools/gpu/pack.sh. Twenty-seventh session (issue 9): the decode GEMV reading its row scale
# before the loop over W (MOE_GROUPED_GEMM_GEMV_EARLY_SCALE=on) against after the sums (the default), `sweep grouped_gemm`
# at T = 1 for all presets, alternating three times; Qwen3-30B-A3B's traced call under each; then the GEMV and F64
# classes under the switch. Logs in $OUT/early27b.tgz.
set -uo pipefail
out=/tmp/moe-early27b; mkdir -p "$out"
trap 'tar czf "$OUT/early27b.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
source tools/gpu/ab-table.sh
declare -A envs=([def]="MOE_GROUPED_GEMM_GEMV_EARLY_SCALE=off" [early]="MOE_GROUPED_GEMM_GEMV_EARLY_SCALE=on")
order=(def.1 early.1 def.2 early.2 def.3 early.3)
for v in "${order[@]}"; do
  env ${envs[${v%.*}]} MOE_SWEEP_TOKENS=1 timeout 90 $B sweep grouped_gemm --device cuda:0 > "$out/t1-$v.log" 2>&1
  echo "== T=1 $v: exit $? (${SECONDS}s)"; grep -E "^\| qwen3.*down" "$out/t1-$v.log" | grep -v cold | cut -c1-120
done
ab_table "$out" t1 "${order[@]}"
for v in def early; do
  [ $((560 - SECONDS)) -gt 150 ] || { echo "== traces skipped (${SECONDS}s)"; break; }
  env ${envs[$v]} MOE_GROUPED_GEMM_GEMV_TRACE=1 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 45 $B sweep grouped_gemm --device cuda:0 > "$out/trace-$v.log" 2>&1
  echo "== traced $v: exit $? (${SECONDS}s)"; grep -A9 -E "gemv trace .*down" "$out/trace-$v.log" | head -24
done
left=$((560 - SECONDS)); [ $left -gt 60 ] || { echo "== GEMV classes skipped (${SECONDS}s)"; exit 0; }
MOE_GROUPED_GEMM_GEMV_EARLY_SCALE=on timeout $left $T -class $K.GroupedGemmGemvTests -class $K.GroupedGemmGemvSingleRowTests \
  -class $K.GroupedGemmGemvTileMapTests -class $K.GroupedGemmGemvPrefetchTests -class $K.GroupedGemmGemvWRowsTests \
  -class $K.GroupedGemmGemvExpertTilesTests -class $K.GroupedGemmTests > "$out/tests.log" 2>&1
echo "== GEMV and F64 classes, early scale: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -24; grep -E "Total:" "$out/tests.log" | head -1
echo "== done in ${SECONDS}s"
