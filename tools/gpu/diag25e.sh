#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-fifth session, issue 9). diag25a-c's loads-only builds (loads,
# loads-block, loads-grid) still ran the 4-W-row branch's unpack and FMAs after the XOR fold (an `if (false)` skipped only
# the 1-row branch); this build folds the loads alone. `sweep grouped_gemm` Qwen3-30B-A3B at T = 1, alternating three
# times: the defaults, the loads alone (MOE_GROUPED_GEMM_GEMV_DIAG=loads), the loads alone in the read floor's order
# (loads-grid), and early (MOE_GROUPED_GEMM_GEMV_EARLY=on). Logs in $OUT/diag25e.tgz.
# Ran on the build of commit e1d2cbc (its GEMV switches are gone from main since; the read floor knobs stay).
set -uo pipefail
out=/tmp/moe-diag25e; mkdir -p "$out"
trap 'tar czf "$OUT/diag25e.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
source tools/gpu/ab-table.sh
declare -A envs=([def]="" [loads]="MOE_GROUPED_GEMM_GEMV_DIAG=loads" [grid]="MOE_GROUPED_GEMM_GEMV_DIAG=loads-grid"
  [early]="MOE_GROUPED_GEMM_GEMV_EARLY=on")
order=()
for i in 1 2 3; do for v in def loads grid early; do order+=("$v.$i"); done; done
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/t1-$v.log" 2>&1
  echo "== T=1 $v (${envs[$key]:-defaults}): exit $? (${SECONDS}s)"
done
ab_table "$out" t1 "${order[@]}"
for v in "${order[@]}"; do echo "cold $v: $(grep -E '^\| qwen3.*(gate_up|down\*w) \(cold\)' "$out/t1-$v.log" | awk -F'|' '{gsub(/ +/, " ", $2); printf "%s=%s;", $2, $4}')"; done
for v in loads grid; do
  env ${envs[$v]} MOE_GROUPED_GEMM_GEMV_TRACE=1 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 45 $B sweep grouped_gemm --device cuda:0 > "$out/trace-$v.log" 2>&1
  echo "== traced $v: exit $? (${SECONDS}s)"; grep -A7 -E "gemv trace .*gate_up T" "$out/trace-$v.log" | head -8
done
echo "== done in ${SECONDS}s"
