#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-fifth session, issue 9): where the decode GEMV's time over a plain
# read of the same W goes. `sweep grouped_gemm` Qwen3-30B-A3B at T = 1, alternating three times: the defaults, the
# diagnostic builds MOE_GROUPED_GEMM_GEMV_DIAG=loads|nox|x|loads-block (grouped_gemm_gemv.cu, GV_DIAG: outputs are not the
# product), and the defaults with the read floor at 3 blocks an SM (MOE_SWEEP_READ_FLOOR_BLOCKS=3, the 1-row entry's
# gate_up grid); then one traced call of the defaults and of loads. Logs in $OUT/diag25a.tgz.
# Ran on the build of commit 19eb016 (its GEMV switches are gone from main since; the read floor knobs stay).
# Its loads-only builds (loads, x, loads-block, loads-grid) still ran the 4-W-row branch's unpack and FMAs after the
# fold; diag25e.sh ran the corrected build.
set -uo pipefail
out=/tmp/moe-diag25a; mkdir -p "$out"
trap 'tar czf "$OUT/diag25a.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
source tools/gpu/ab-table.sh
declare -A envs=([def]="" [loads]="MOE_GROUPED_GEMM_GEMV_DIAG=loads" [nox]="MOE_GROUPED_GEMM_GEMV_DIAG=nox"
  [x]="MOE_GROUPED_GEMM_GEMV_DIAG=x" [lb]="MOE_GROUPED_GEMM_GEMV_DIAG=loads-block" [rf3]="MOE_SWEEP_READ_FLOOR_BLOCKS=3")
order=()
for i in 1 2 3; do for v in def loads nox x lb rf3; do order+=("$v.$i"); done; done
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/t1-$v.log" 2>&1
  echo "== T=1 $v (${envs[$key]:-defaults}): exit $? (${SECONDS}s)"
done
ab_table "$out" t1 "${order[@]}"
for v in def loads; do
  env ${envs[$v]} MOE_GROUPED_GEMM_GEMV_TRACE=1 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 45 $B sweep grouped_gemm --device cuda:0 > "$out/trace-$v.log" 2>&1
  echo "== traced $v: exit $? (${SECONDS}s)"; grep -A7 -E "gemv trace .*gate_up T" "$out/trace-$v.log" | head -8
done
echo "== done in ${SECONDS}s"
