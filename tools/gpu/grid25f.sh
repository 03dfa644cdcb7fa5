#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-fifth session, issue 9): the decode GEMV's 1-row entry in the
# grid order (MOE_GROUPED_GEMM_GEMV1_ORDER=grid; grouped_gemm_gemv.cu GV1_GRID) against the row order, `sweep
# grouped_gemm` Qwen3-30B-A3B, DeepSeek-V3 and Mixtral-8x7B at T = 1, alternating three times; one traced call of each
# order (Qwen3); then, under the grid order, the grid order's bits class, the GEMV classes and the fused decode classes.
# Logs in $OUT/grid25f.tgz.
# Ran on the build of commit 59fccdd (its GEMV switches are gone from main since; the read floor knobs stay).
set -uo pipefail
out=/tmp/moe-grid25f; mkdir -p "$out"
trap 'tar czf "$OUT/grid25f.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
R=MoeRuntime.Tests.Runtime
SECONDS=0
source tools/gpu/ab-table.sh
declare -A envs=([rows]="" [grid]="MOE_GROUPED_GEMM_GEMV1_ORDER=grid")
order=(rows.1 grid.1 rows.2 grid.2 rows.3 grid.3)
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} MOE_SWEEP_MODELS=qwen3,deepseek,mixtral MOE_SWEEP_TOKENS=1 timeout 90 $B sweep grouped_gemm --device cuda:0 > "$out/t1-$v.log" 2>&1
  echo "== T=1 $v (${envs[$key]:-defaults}): exit $? (${SECONDS}s)"
done
ab_table "$out" t1 "${order[@]}"
for v in "${order[@]}"; do echo "cold $v: $(grep -E '^\| [a-z0-9-]+ (gate_up|down\*w) \(cold\)' "$out/t1-$v.log" | awk -F'|' '{gsub(/ +/, " ", $2); printf "%s=%s;", $2, $4}')"; done
for v in rows grid; do
  env ${envs[$v]} MOE_GROUPED_GEMM_GEMV_TRACE=1 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 45 $B sweep grouped_gemm --device cuda:0 > "$out/trace-$v.log" 2>&1
  echo "== traced $v: exit $? (${SECONDS}s)"; grep -A7 -E "gemv trace .*gate_up T" "$out/trace-$v.log" | head -8
done
left=$((570 - SECONDS)); [ $left -gt 60 ] || { echo "== tests skipped (${SECONDS}s)"; exit 0; }
MOE_GROUPED_GEMM_GEMV1_ORDER=grid timeout $left $T -class $K.GroupedGemmGemvGridOrderTests -class $K.GroupedGemmGemvTests -class $K.GroupedGemmGemvSingleRowTests \
  -class $K.GroupedGemmGemvTileMapTests -class $K.GroupedGemmGemvPrefetchTests -class $K.GroupedGemmGemvWRowsTests -class $K.GroupedGemmGemvExpertTilesTests \
  -class $R.MoeLayerFusedDecodeTests -class MoeRuntime.Tests.Kernels.MoeDecodeTests > "$out/tests-grid.log" 2>&1
echo "== grid-order classes: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/tests-grid.log" | head -40; grep -E "Total:" "$out/tests-grid.log" | head -1
echo "== done in ${SECONDS}s"
