#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-fifth session, issue 9), after diag25e.sh (the loads alone in the
# read floor's addresses take 13.75 us against its 12.5): `sweep grouped_gemm` Qwen3-30B-A3B at T = 1, alternating three
# times: the defaults; the 1-row entry writing each warp's columns without the block barrier (MOE_GROUPED_GEMM_GEMV1_DIRECT=on,
# same bits); the loads alone without the epilogue, in the GEMV's order and in the read floor's
# (MOE_GROUPED_GEMM_GEMV_DIAG=loads-noepi|loads-grid-noepi); the loads alone in the read floor's order with it (loads-grid).
# Then the 1-row, map and prefetch classes under direct. Logs in $OUT/diag25g.tgz.
# Ran on the build of commit 7fc5425. Its diagnostic builds are gone from main; the direct write is main's default since
# 400fc06 (same PTX as the build that ran with the switch on). The loads-noepi rows are not a read of all of W: with no
# epilogue, two of a thread's four loaded rows feed nothing, and ptxas may drop loads whose results are unused.
set -uo pipefail
out=/tmp/moe-diag25g; mkdir -p "$out"
trap 'tar czf "$OUT/diag25g.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
source tools/gpu/ab-table.sh
declare -A envs=([def]="" [direct]="MOE_GROUPED_GEMM_GEMV1_DIRECT=on" [noepi]="MOE_GROUPED_GEMM_GEMV_DIAG=loads-noepi"
  [gnoepi]="MOE_GROUPED_GEMM_GEMV_DIAG=loads-grid-noepi" [grid]="MOE_GROUPED_GEMM_GEMV_DIAG=loads-grid")
order=()
for i in 1 2 3; do for v in def direct noepi gnoepi grid; do order+=("$v.$i"); done; done
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/t1-$v.log" 2>&1
  echo "== T=1 $v (${envs[$key]:-defaults}): exit $? (${SECONDS}s)"
done
ab_table "$out" t1 "${order[@]}"
for v in "${order[@]}"; do echo "cold $v: $(grep -E '^\| qwen3.*(gate_up|down\*w) \(cold\)' "$out/t1-$v.log" | awk -F'|' '{gsub(/ +/, " ", $2); printf "%s=%s;", $2, $4}')"; done
left=$((300 - SECONDS)); [ $left -gt 60 ] || { echo "== direct classes skipped (${SECONDS}s)"; exit 0; }
MOE_GROUPED_GEMM_GEMV1_DIRECT=on timeout $left $T -class $K.GroupedGemmGemvSingleRowTests -class $K.GroupedGemmGemvTileMapTests -class $K.GroupedGemmGemvPrefetchTests > "$out/tests-direct.log" 2>&1
echo "== direct classes: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/tests-direct.log" | head -24; grep -E "Total:" "$out/tests-direct.log" | head -1
echo "== done in ${SECONDS}s"
