#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-fourth session, issue 9): balance24c with two draws in flight a
# warp (the next batch asked for before the current one is summed), 1, 2 or 4 segments a draw
# (MOE_GROUPED_GEMM_GEMV1_BALANCE=1|2|4), against the static order, `sweep grouped_gemm` Qwen3-30B-A3B and DeepSeek-V3
# at T = 1 alternating; one traced run of 2; the GEMV classes against the F64 reference under 2. Logs in $OUT/balance24d.tgz.
# Ran on the build of commit badbc33 (its switches are gone from main since).
set -uo pipefail
out=/tmp/moe-balance24d; mkdir -p "$out"
trap 'tar czf "$OUT/balance24d.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
source tools/gpu/ab-table.sh
declare -A envs=([def]="" [b2]="MOE_GROUPED_GEMM_GEMV1_BALANCE=2" [b4]="MOE_GROUPED_GEMM_GEMV1_BALANCE=4" [b1]="MOE_GROUPED_GEMM_GEMV1_BALANCE=1")
order=(def.1 b2.1 b4.1 b1.1 def.2 b2.2 b4.2 b1.2 def.3 b2.3 b4.3)
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} MOE_SWEEP_MODELS=qwen3,deepseek MOE_SWEEP_TOKENS=1 timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/t1-$v.log" 2>&1
  echo "== T=1 $v (${envs[$key]:-defaults}): exit $? (${SECONDS}s)"
done
ab_table "$out" t1 "${order[@]}"
env ${envs[b2]} MOE_GROUPED_GEMM_GEMV_TRACE=1 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 45 $B sweep grouped_gemm --device cuda:0 > "$out/trace-b2.log" 2>&1
echo "== traced b2: exit $? (${SECONDS}s)"; grep -A7 -E "gemv trace .*(gate_up|down\*w) T" "$out/trace-b2.log" | head -16
left=$((560 - SECONDS)); [ $left -gt 60 ] || { echo "== classes skipped (${SECONDS}s)"; exit 0; }
env ${envs[b2]} timeout $left $T -class $K.GroupedGemmGemvTests > "$out/tests-b2.log" 2>&1
echo "== b2 GemvTests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/tests-b2.log" | head -30; grep -E "Total:" "$out/tests-b2.log" | head -1
echo "== done in ${SECONDS}s"
