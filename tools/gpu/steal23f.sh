#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-third session, issue 9): the 1-row entry's warps sharing their items at
# run time (MOE_GROUPED_GEMM_GEMV1_STEAL=on) against the static order, `sweep grouped_gemm` Qwen3-30B-A3B T = 1 alternating,
# three runs each; one traced run each way; then the 1-row entry's test class under it (the bits against the 4-row entry, call after call on one
# workspace, tickets zero after each); then the same class and the map-reading GEMV classes on the default build.
# Logs in $OUT/steal23f.tgz.
# Ran on the build of commit 39fe28d (its switches are gone from main since).
set -uo pipefail
out=/tmp/moe-steal23f; mkdir -p "$out"
trap 'tar czf "$OUT/steal23f.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
source tools/gpu/ab-table.sh
declare -A envs=([def]="" [steal]="MOE_GROUPED_GEMM_GEMV1_STEAL=on")
order=(def.1 steal.1 def.2 steal.2 def.3 steal.3)
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 45 $B sweep grouped_gemm --device cuda:0 > "$out/qwen-$v.log" 2>&1
  echo "== qwen3 $v (${envs[$key]:-defaults}): exit $? (${SECONDS}s)"
done
ab_table "$out" qwen "${order[@]}"
for v in steal def; do # traced: under steal the stamps are warp 0's (tile found, its last item's end, done)
  env ${envs[$v]} MOE_GROUPED_GEMM_GEMV_TRACE=1 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 45 $B sweep grouped_gemm --device cuda:0 > "$out/trace-$v.log" 2>&1
  echo "== traced $v: exit $? (${SECONDS}s)"; grep -A7 -E "gemv trace .*gate_up" "$out/trace-$v.log" | head -16
done
MOE_GROUPED_GEMM_GEMV1_STEAL=on timeout 150 $T -class $K.GroupedGemmGemvSingleRowTests > "$out/tests-steal.log" 2>&1
echo "== steal bits: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/tests-steal.log" | head -24; grep -E "Total:" "$out/tests-steal.log" | head -1
left=$((560 - SECONDS)); [ $left -gt 60 ] || { echo "== default map classes skipped (${SECONDS}s)"; exit 0; }
timeout $left $T -class $K.GroupedGemmGemvSingleRowTests -class $K.GroupedGemmGemvTileMapTests -class $K.GroupedGemmGemvPrefetchTests > "$out/tests-def.log" 2>&1
echo "== default map classes: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/tests-def.log" | head -24; grep -E "Total:" "$out/tests-def.log" | head -1
echo "== done in ${SECONDS}s"
