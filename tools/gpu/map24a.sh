#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-fourth session, issue 9): the decode GEMV's blocks asking L2 for
# their map entry (and X's lines) before the wait (MOE_GROUPED_GEMM_GEMV_MAP_L2=map|map+x) against the defaults,
# `sweep grouped_gemm` Qwen3-30B-A3B and DeepSeek-V3 at T = 1 alternating, three runs each; one traced run each of
# defaults and map; then the map-reading GEMV classes under map+x. Logs in $OUT/map24a.tgz.
# Ran on the build of commit 6e6c0f7 (its switches are gone from main since).
set -uo pipefail
out=/tmp/moe-map24a; mkdir -p "$out"
trap 'tar czf "$OUT/map24a.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
source tools/gpu/ab-table.sh
declare -A envs=([def]="" [map]="MOE_GROUPED_GEMM_GEMV_MAP_L2=map" [mapx]="MOE_GROUPED_GEMM_GEMV_MAP_L2=map+x")
order=(def.1 map.1 mapx.1 def.2 map.2 mapx.2 def.3 map.3 mapx.3)
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} MOE_SWEEP_MODELS=qwen3,deepseek MOE_SWEEP_TOKENS=1 timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/t1-$v.log" 2>&1
  echo "== T=1 $v (${envs[$key]:-defaults}): exit $? (${SECONDS}s)"
done
ab_table "$out" t1 "${order[@]}"
for v in def map; do
  env ${envs[$v]} MOE_GROUPED_GEMM_GEMV_TRACE=1 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 45 $B sweep grouped_gemm --device cuda:0 > "$out/trace-$v.log" 2>&1
  echo "== traced $v: exit $? (${SECONDS}s)"; grep -A7 -E "gemv trace .*gate_up T" "$out/trace-$v.log" | head -8
done
left=$((560 - SECONDS)); [ $left -gt 60 ] || { echo "== map+x classes skipped (${SECONDS}s)"; exit 0; }
MOE_GROUPED_GEMM_GEMV_MAP_L2=map+x timeout $left $T -class $K.GroupedGemmGemvSingleRowTests -class $K.GroupedGemmGemvTileMapTests -class $K.GroupedGemmGemvPrefetchTests > "$out/tests-mapx.log" 2>&1
echo "== map+x classes: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/tests-mapx.log" | head -24; grep -E "Total:" "$out/tests-mapx.log" | head -1
echo "== done in ${SECONDS}s"
