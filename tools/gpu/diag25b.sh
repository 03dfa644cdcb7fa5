#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-fifth session, issue 9), after diag25a.sh (the loads alone take
# the call's time): `sweep grouped_gemm` Qwen3-30B-A3B at T = 1, alternating three times: the defaults, the loads alone
# (MOE_GROUPED_GEMM_GEMV_DIAG=loads), the loads alone in the read floor's order (loads-grid), and the defaults without
# the 1-row entry's blocks-an-SM cap (MOE_GROUPED_GEMM_GEMV1_BLOCKS=none); then one traced call of loads-grid.
# Logs in $OUT/diag25b.tgz.
# Ran on the build of commit ab2a1fc (its GEMV switches are gone from main since; the read floor knobs stay).
# Its loads-only builds (loads, x, loads-block, loads-grid) still ran the 4-W-row branch's unpack and FMAs after the
# fold; diag25e.sh ran the corrected build.
set -uo pipefail
out=/tmp/moe-diag25b; mkdir -p "$out"
trap 'tar czf "$OUT/diag25b.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
source tools/gpu/ab-table.sh
declare -A envs=([def]="" [loads]="MOE_GROUPED_GEMM_GEMV_DIAG=loads" [grid]="MOE_GROUPED_GEMM_GEMV_DIAG=loads-grid"
  [none]="MOE_GROUPED_GEMM_GEMV1_BLOCKS=none")
order=()
for i in 1 2 3; do for v in def loads grid none; do order+=("$v.$i"); done; done
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/t1-$v.log" 2>&1
  echo "== T=1 $v (${envs[$key]:-defaults}): exit $? (${SECONDS}s)"
done
ab_table "$out" t1 "${order[@]}"
for v in "${order[@]}"; do echo "cold $v: $(grep -E '^\| qwen3.*\(cold\)' "$out/t1-$v.log" | awk -F'|' '{gsub(/ +/, " ", $2); printf "%s=%s;", $2, $4}')"; done
for v in grid; do
  env ${envs[$v]} MOE_GROUPED_GEMM_GEMV_TRACE=1 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 45 $B sweep grouped_gemm --device cuda:0 > "$out/trace-$v.log" 2>&1
  echo "== traced $v: exit $? (${SECONDS}s)"; grep -A7 -E "gemv trace .*gate_up T" "$out/trace-$v.log" | head -8
done
echo "== done in ${SECONDS}s"
