#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-fourth session, issue 9): the decode GEMV with 2 W rows a warp
# (MOE_GROUPED_GEMM_GEMV_WROWS=2: twice the blocks, each half the work, so the block scheduler fills an SM that finishes
# early) with 1 or 2 segments in flight (MOE_GROUPED_GEMM_GEMV1_UNROLL) against the defaults, `sweep grouped_gemm`
# Qwen3-30B-A3B and DeepSeek-V3 at T = 1 alternating, three runs each; one traced run of w2u2; the 1-row and map classes
# under it; then `sweep moe_layer` Qwen3 T = 1 defaults and w2u2 while time is left. Logs in $OUT/wrows24b.tgz.
# Ran on the build of commit 6e6c0f7 (its switches are gone from main since).
set -uo pipefail
out=/tmp/moe-wrows24b; mkdir -p "$out"
trap 'tar czf "$OUT/wrows24b.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
source tools/gpu/ab-table.sh
declare -A envs=([def]="" [w2u1]="MOE_GROUPED_GEMM_GEMV_WROWS=2" [w2u2]="MOE_GROUPED_GEMM_GEMV_WROWS=2 MOE_GROUPED_GEMM_GEMV1_UNROLL=2")
order=(def.1 w2u2.1 w2u1.1 def.2 w2u2.2 w2u1.2 def.3 w2u2.3 w2u1.3)
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} MOE_SWEEP_MODELS=qwen3,deepseek MOE_SWEEP_TOKENS=1 timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/t1-$v.log" 2>&1
  echo "== T=1 $v (${envs[$key]:-defaults}): exit $? (${SECONDS}s)"
done
ab_table "$out" t1 "${order[@]}"
env ${envs[w2u2]} MOE_GROUPED_GEMM_GEMV_TRACE=1 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 45 $B sweep grouped_gemm --device cuda:0 > "$out/trace-w2u2.log" 2>&1
echo "== traced w2u2: exit $? (${SECONDS}s)"; grep -A7 -E "gemv trace .*(gate_up|down\*w) T" "$out/trace-w2u2.log" | head -16
env ${envs[w2u2]} timeout 200 $T -class $K.GroupedGemmGemvSingleRowTests -class $K.GroupedGemmGemvTileMapTests > "$out/tests-w2u2.log" 2>&1
echo "== w2u2 classes: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/tests-w2u2.log" | head -40; grep -E "Total:" "$out/tests-w2u2.log" | head -1
for v in def w2u2; do
  left=$((540 - SECONDS)); [ $left -gt 40 ] || { echo "== layer $v skipped (${SECONDS}s)"; continue; }
  env ${envs[$v]} MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout $left $B sweep moe_layer --device cuda:0 > "$out/layer-$v.log" 2>&1
  echo "== layer $v: exit $? (${SECONDS}s)"; grep -E "^\| [a-z]" "$out/layer-$v.log" | cut -c1-160 | head -8
done
echo "== done in ${SECONDS}s"
