#!/usr/bin/env bash
# (The switch this script compares was removed after the run; the build it ran is commit a902307.)
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-third session, issue 9): trace23c and spread23d showed Qwen3-30B-A3B
# T = 1 gate_up finding its tile 0.83 us after its wait (median): the map, read after 50 MB of W went through L2, comes from
# DRAM. MOE_GROUPED_GEMM_GEMV_EVICT=first marks W's lines evict-first. `sweep grouped_gemm` Qwen3 T = 1 alternating, three
# runs each; one traced run with it; then Mixtral-8x7B and DeepSeek-V3 at T = 1, one run each way. Logs in $OUT/evict23e.tgz.
set -uo pipefail
out=/tmp/moe-evict23e; mkdir -p "$out"
trap 'tar czf "$OUT/evict23e.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
source tools/gpu/ab-table.sh
declare -A envs=([def]="" [evict]="MOE_GROUPED_GEMM_GEMV_EVICT=first")
order=(def.1 evict.1 def.2 evict.2 def.3 evict.3)
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 45 $B sweep grouped_gemm --device cuda:0 > "$out/qwen-$v.log" 2>&1
  echo "== qwen3 $v (${envs[$key]:-defaults}): exit $? (${SECONDS}s)"
done
ab_table "$out" qwen "${order[@]}"
env ${envs[evict]} MOE_GROUPED_GEMM_GEMV_TRACE=1 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 45 $B sweep grouped_gemm --device cuda:0 > "$out/trace-evict.log" 2>&1
echo "== traced evict: exit $? (${SECONDS}s)"
grep -A8 -E "gemv trace .*(gate_up|down)" "$out/trace-evict.log" | head -30
for v in def.1 evict.1; do
  key=${v%.*}
  env ${envs[$key]} MOE_SWEEP_MODELS=mixtral,deepseek MOE_SWEEP_TOKENS=1 timeout 100 $B sweep grouped_gemm --device cuda:0 > "$out/big-$v.log" 2>&1
  echo "== mixtral,deepseek $v: exit $? (${SECONDS}s)"
done
ab_table "$out" big def.1 evict.1
echo "== done in ${SECONDS}s"
