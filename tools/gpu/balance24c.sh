#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-fourth session, issue 9): the 1-row entry's warps drawing their
# block's 512-byte W segments from a shared-memory counter (MOE_GROUPED_GEMM_GEMV1_BALANCE=on) against the static order,
# `sweep grouped_gemm` Qwen3-30B-A3B and DeepSeek-V3 at T = 1 alternating, three runs each; one traced run of it; the GEMV
# classes against the F64 reference under it. Logs in $OUT/balance24c.tgz.
# Ran on the build of commit 6e6c0f7 (its switches are gone from main since).
set -uo pipefail
out=/tmp/moe-balance24c; mkdir -p "$out"
trap 'tar czf "$OUT/balance24c.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
source tools/gpu/ab-table.sh
declare -A envs=([def]="" [bal]="MOE_GROUPED_GEMM_GEMV1_BALANCE=on")
order=(def.1 bal.1 def.2 bal.2 def.3 bal.3)
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} MOE_SWEEP_MODELS=qwen3,deepseek MOE_SWEEP_TOKENS=1 timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/t1-$v.log" 2>&1
  echo "== T=1 $v (${envs[$key]:-defaults}): exit $? (${SECONDS}s)"
done
ab_table "$out" t1 "${order[@]}"
env ${envs[bal]} MOE_GROUPED_GEMM_GEMV_TRACE=1 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 45 $B sweep grouped_gemm --device cuda:0 > "$out/trace-bal.log" 2>&1
echo "== traced bal: exit $? (${SECONDS}s)"; grep -A7 -E "gemv trace .*(gate_up|down\*w) T" "$out/trace-bal.log" | head -16
left=$((560 - SECONDS)); [ $left -gt 60 ] || { echo "== classes skipped (${SECONDS}s)"; exit 0; }
env ${envs[bal]} timeout $left $T -class $K.GroupedGemmGemvTests > "$out/tests-bal.log" 2>&1
echo "== bal GemvTests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/tests-bal.log" | head -30; grep -E "Total:" "$out/tests-bal.log" | head -1
echo "== done in ${SECONDS}s"
