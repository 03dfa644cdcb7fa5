#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-fifth session, issue 9), after diag25b.sh (the read floor's order
# of W takes 0.37 us off the loads alone; 1.5 us to the read floor are left): `sweep grouped_gemm` Qwen3-30B-A3B at T = 1,
# alternating three times: the defaults, the 1-row entry placing its block before the wait (MOE_GROUPED_GEMM_GEMV_EARLY=on,
# same bits), the loads alone in the read floor's order (MOE_GROUPED_GEMM_GEMV_DIAG=loads-grid) and both; then one traced
# call of the defaults, of early and of the read floor (MOE_SWEEP_READ_FLOOR_TRACE=1); then the GEMV classes under early.
# Logs in $OUT/diag25c.tgz.
# Ran on the build of commit 0851938 (its GEMV switches are gone from main since; the read floor knobs stay).
# Its loads-only builds (loads, x, loads-block, loads-grid) still ran the 4-W-row branch's unpack and FMAs after the
# fold; diag25e.sh ran the corrected build.
set -uo pipefail
out=/tmp/moe-diag25c; mkdir -p "$out"
trap 'tar czf "$OUT/diag25c.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
source tools/gpu/ab-table.sh
declare -A envs=([def]="" [early]="MOE_GROUPED_GEMM_GEMV_EARLY=on" [grid]="MOE_GROUPED_GEMM_GEMV_DIAG=loads-grid"
  [egrid]="MOE_GROUPED_GEMM_GEMV_EARLY=on MOE_GROUPED_GEMM_GEMV_DIAG=loads-grid")
order=()
for i in 1 2 3; do for v in def early grid egrid; do order+=("$v.$i"); done; done
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/t1-$v.log" 2>&1
  echo "== T=1 $v (${envs[$key]:-defaults}): exit $? (${SECONDS}s)"
done
ab_table "$out" t1 "${order[@]}"
for v in "${order[@]}"; do echo "cold $v: $(grep -E '^\| qwen3.*(gate_up|down\*w) \(cold\)' "$out/t1-$v.log" | awk -F'|' '{gsub(/ +/, " ", $2); printf "%s=%s;", $2, $4}')"; done
for v in def early; do
  env ${envs[$v]} MOE_GROUPED_GEMM_GEMV_TRACE=1 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 45 $B sweep grouped_gemm --device cuda:0 > "$out/trace-$v.log" 2>&1
  echo "== traced $v: exit $? (${SECONDS}s)"; grep -A7 -E "gemv trace .*gate_up T" "$out/trace-$v.log" | head -8
done
MOE_SWEEP_READ_FLOOR_TRACE=1 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 45 $B sweep grouped_gemm --device cuda:0 > "$out/trace-rf.log" 2>&1
echo "== traced read floor: exit $? (${SECONDS}s)"; grep -A7 -E "read floor trace .*gate_up read floor" "$out/trace-rf.log" | head -16
left=$((560 - SECONDS)); [ $left -gt 60 ] || { echo "== early classes skipped (${SECONDS}s)"; exit 0; }
MOE_GROUPED_GEMM_GEMV_EARLY=on timeout $left $T -class $K.GroupedGemmGemvSingleRowTests -class $K.GroupedGemmGemvTileMapTests -class $K.GroupedGemmGemvPrefetchTests > "$out/tests-early.log" 2>&1
echo "== early classes: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/tests-early.log" | head -24; grep -E "Total:" "$out/tests-early.log" | head -1
echo "== done in ${SECONDS}s"
