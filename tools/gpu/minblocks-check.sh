#!/usr/bin/env bash
# GPU machine, one H200 (cuda:0), after tools/gpu/pack.sh and `bash .gpu/run.sh true`: issue 9, the decode GEMV's blocks
# an SM (MOE_GROUPED_GEMM_GEMV_MIN_BLOCKS: unset = 103 registers, 2 blocks an SM; 3 = 80 registers with 56 bytes spilled;
# 4 = 64 with 272), and its phase trace (MOE_GROUPED_GEMM_GEMV_TRACE=1) at Qwen3-30B-A3B T=1.
#   1. GroupedGemmGemvTests and GroupedGemmGemvExpertTilesTests with min blocks 3 (the spilling build computes the same).
#   2. `sweep grouped_gemm` at T=1 (three models, with the read floor rows): min blocks 1, 3, 4.
#   3. `sweep moe_layer` at T=1: min blocks 1, 3, 4, 1.
#   4. The trace of Qwen3 T=1 (default build).
# Stdout: test totals, "row | mb1 | mb3 | mb4 | read floor" (us), the layer rows, the trace. Logs in $OUT/minblocks.tgz.
set -uo pipefail
out=/tmp/moe-minblocks; mkdir -p "$out"
trap 'tar czf "$OUT/minblocks.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
MOE_GROUPED_GEMM_GEMV_MIN_BLOCKS=3 timeout 90 $T -class $K.GroupedGemmGemvTests -class $K.GroupedGemmGemvExpertTilesTests > "$out/tests-mb3.log" 2>&1
echo "== GEMV tests, min blocks 3: exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 8 "$out/tests-mb3.log" | head -30; grep -E "Total:" "$out/tests-mb3.log"
MOE_EXPERT_TILES_WALK=parallel timeout 40 $T -class $K.GroupedGemmGemvExpertTilesTests > "$out/tests-parallel.log" 2>&1
echo "== tile map tests, parallel walk: exit $? (${SECONDS}s)"; grep -E "Total:" "$out/tests-parallel.log"

rows() { grep -E "^\| [a-z]" "$1" | grep -v "^| name" | awk -F'|' '{gsub(/^ +| +$/, "", $2); split($3, s, " ");
  gsub(/ /, "", $4); printf "%s %s\t%s\n", $2, s[1], $4}' | LC_ALL=C sort; }
jn() { LC_ALL=C join -t $'\t' -a 1 -e - -o auto "$@"; }
for mb in 1 3 4; do
  MOE_GROUPED_GEMM_GEMV_MIN_BLOCKS=$mb MOE_SWEEP_TOKENS=1 timeout 90 $B sweep grouped_gemm --device cuda:0 --json "$out/gemm-mb$mb.json" > "$out/gemm-mb$mb.log" 2>&1
  echo "== sweep grouped_gemm T=1, min blocks $mb: exit $? (${SECONDS}s)"
  rows "$out/gemm-mb$mb.log" > "$out/gemm-mb$mb.rows"
done
echo "grouped GEMM T=1 (us): row | mb1 | mb3 | mb4"
jn "$out/gemm-mb1.rows" "$out/gemm-mb3.rows" | jn - "$out/gemm-mb4.rows" | tr '\t' '|'
i=0
for mb in 1 3 4 1; do
  i=$((i + 1))
  MOE_GROUPED_GEMM_GEMV_MIN_BLOCKS=$mb MOE_SWEEP_TOKENS=1 timeout 80 $B sweep moe_layer --device cuda:0 --json "$out/layer-$i-mb$mb.json" > "$out/layer-$i-mb$mb.log" 2>&1
  echo "== layer T=1, min blocks $mb: exit $? (${SECONDS}s)"
  rows "$out/layer-$i-mb$mb.log" | sed 's/^/  /'
done
MOE_GROUPED_GEMM_GEMV_TRACE=1 MOE_SWEEP_TOKENS=1 MOE_SWEEP_MODELS=qwen3 timeout 40 $B sweep grouped_gemm --device cuda:0 > "$out/trace.log" 2>&1
echo "== GEMV trace, Qwen3 T=1: exit $? (${SECONDS}s)"
grep -E "^gemv trace|^  " "$out/trace.log" | head -30
