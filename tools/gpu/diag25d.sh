#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-fifth session, issue 9), after diag25c.sh: does the read floor
# owe its lead over the decode GEMV to the next call's blocks waiting on the SMs before this call ends? `sweep
# grouped_gemm` Qwen3-30B-A3B at T = 1, alternating three times: the defaults; without dependent launch (MOE_PDL=0); the
# read floor in the GEMV's 384 blocks (MOE_SWEEP_READ_FLOOR_PER_EXPERT=48); and that held to 3 blocks an SM by 57 KB of
# unused shared memory (MOE_SWEEP_READ_FLOOR_SHARED_KB=57, as the 1-row entry is held), so no block of the next call fits
# beside them. Then one traced call of the read floor (default grid, and the held one). Logs in $OUT/diag25d.tgz.
# Ran on the build of commit 7763e4c (its GEMV switches are gone from main since; the read floor knobs stay).
set -uo pipefail
out=/tmp/moe-diag25d; mkdir -p "$out"
trap 'tar czf "$OUT/diag25d.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
source tools/gpu/ab-table.sh
declare -A envs=([def]="" [pdl0]="MOE_PDL=0" [rf48]="MOE_SWEEP_READ_FLOOR_PER_EXPERT=48"
  [rf48s]="MOE_SWEEP_READ_FLOOR_PER_EXPERT=48 MOE_SWEEP_READ_FLOOR_SHARED_KB=57")
order=()
for i in 1 2 3; do for v in def pdl0 rf48 rf48s; do order+=("$v.$i"); done; done
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/t1-$v.log" 2>&1
  echo "== T=1 $v (${envs[$key]:-defaults}): exit $? (${SECONDS}s)"
done
ab_table "$out" t1 "${order[@]}"
for v in "${order[@]}"; do echo "cold $v: $(grep -E '^\| qwen3.*(gate_up|down\*w)( read floor)? \(cold\)' "$out/t1-$v.log" | awk -F'|' '{gsub(/ +/, " ", $2); printf "%s=%s;", $2, $4}')"; done
for v in def rf48s; do
  env ${envs[$v]} MOE_SWEEP_READ_FLOOR_TRACE=1 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 45 $B sweep grouped_gemm --device cuda:0 > "$out/trace-rf-$v.log" 2>&1
  echo "== traced read floor $v: exit $? (${SECONDS}s)"; grep -A7 -E "read floor trace .*gate_up read floor" "$out/trace-rf-$v.log" | head -16
done
echo "== done in ${SECONDS}s"
