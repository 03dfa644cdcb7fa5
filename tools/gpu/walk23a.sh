#!/usr/bin/env bash
# (The switches this script compares were removed after the run; the build it ran is commit 6be9445.)
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-third session, issue 9): the decode GEMV's 1-row entry at Qwen3-30B-A3B
# T = 1 under more segments in flight and a row-by-row walk. `sweep grouped_gemm` alternating, two runs each: defaults;
# min3u2 (launch bound 3 blocks an SM, 2 segments of each row: 80 registers, no spills); row4 (4 segments of one row
# at a time, 64 registers); min3row8 (8 segments of one row, bound 3); min3 alone (the bound's own effect). Then the
# 1-row entry's bit test (against the 4-row entry) under each, and `sweep moe_layer` Qwen3 T = 1 under each. Logs in
# $OUT/walk23a.tgz.
set -uo pipefail
out=/tmp/moe-walk23a; mkdir -p "$out"
trap 'tar czf "$OUT/walk23a.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
source tools/gpu/ab-table.sh
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,clocks.mem --format=csv,noheader 2>/dev/null | head -1
declare -A envs=([def]="" [min3]="MOE_GROUPED_GEMM_GEMV1_MIN_BLOCKS=3"
                 [min3u2]="MOE_GROUPED_GEMM_GEMV1_MIN_BLOCKS=3 MOE_GROUPED_GEMM_GEMV1_UNROLL=2"
                 [row4]="MOE_GROUPED_GEMM_GEMV1_ROW_WALK=4"
                 [min3row8]="MOE_GROUPED_GEMM_GEMV1_MIN_BLOCKS=3 MOE_GROUPED_GEMM_GEMV1_ROW_WALK=8")
names=(def min3u2 row4 min3row8 min3)
order=(); for r in 1 2; do for n in "${names[@]}"; do order+=("$n.$r"); done; done
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/qwen-$v.log" 2>&1
  echo "== qwen3 $v (${envs[$key]:-defaults}): exit $? (${SECONDS}s)"
done
ab_table "$out" qwen "${order[@]}"
for n in "${names[@]}"; do
  [ $n = def ] && continue
  env ${envs[$n]} timeout 120 $T -class $K.GroupedGemmGemvSingleRowTests > "$out/tests-$n.log" 2>&1
  echo "== bits $n: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/tests-$n.log" | head -20; grep -E "Total:" "$out/tests-$n.log"
done
for v in def.1 min3u2.1 row4.1 min3row8.1 def.2 min3u2.2 row4.2 min3row8.2; do
  key=${v%.*}
  env ${envs[$key]} MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/layer-$v.log" 2>&1
  echo "== layer $v: exit $? (${SECONDS}s)"
done
ab_table "$out" layer def.1 min3u2.1 row4.1 min3row8.1 def.2 min3u2.2 row4.2 min3row8.2
echo "== done in ${SECONDS}s"
