#!/usr/bin/env bash
# GPU machine, one H200 (cuda:0), after tools/gpu/pack.sh and `bash .gpu/run.sh true`: issue 9 / 5, decode GEMV build
# variants at T = 1, each isolated (`sweep grouped_gemm`, with the read floor rows) and in the layer (`sweep moe_layer`):
#   base     the default (4 W rows a warp group, 2 segments in flight, 103 registers: 2 blocks an SM)
#   block    MOE_GROUPED_GEMM_GEMV_TILE_SEARCH=block (one warp finds the block's m-tile)
#   u1       MOE_GROUPED_GEMM_GEMV_UNROLL=1 (80 registers: 3 blocks an SM)
#   u1block  both
#   w8       MOE_GROUPED_GEMM_GEMV_WROWS=8 UNROLL=1 MIN_BLOCKS=2 (half the blocks: one wave of 2 an SM; 36 bytes spilled)
#   base again, last.
# First the GEMV test classes under block, w8 and u1block (the fused 8-row mapping and the shared tile are new code).
# Stdout: test totals, "row | base | block | u1 | u1block | w8 | base2" (us). Logs in $OUT/gemvab.tgz.
set -uo pipefail
out=/tmp/moe-gemvab; mkdir -p "$out"
trap 'tar czf "$OUT/gemvab.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
declare -A ENV=(
  [base]=""
  [block]="MOE_GROUPED_GEMM_GEMV_TILE_SEARCH=block"
  [u1]="MOE_GROUPED_GEMM_GEMV_UNROLL=1"
  [u1block]="MOE_GROUPED_GEMM_GEMV_UNROLL=1 MOE_GROUPED_GEMM_GEMV_TILE_SEARCH=block"
  [w8]="MOE_GROUPED_GEMM_GEMV_WROWS=8 MOE_GROUPED_GEMM_GEMV_UNROLL=1 MOE_GROUPED_GEMM_GEMV_MIN_BLOCKS=2"
  [base2]=""
)
for v in block w8 u1block; do
  env ${ENV[$v]} timeout 60 $T -class $K.GroupedGemmGemvTests -class $K.GroupedGemmGemvExpertTilesTests -class $K.GroupedGemmDenseGemvTests > "$out/tests-$v.log" 2>&1
  echo "== GEMV tests, $v (${ENV[$v]}): exit $? (${SECONDS}s)"
  grep -E "\[FAIL\]" -A 6 "$out/tests-$v.log" | head -20; grep -E "Total:" "$out/tests-$v.log"
done
rows() { grep -E "^\| [a-z]" "$1" | grep -v "^| name" | grep -v "(cold)" | awk -F'|' '{gsub(/^ +| +$/, "", $2); split($3, s, " ");
  gsub(/ /, "", $4); printf "%s %s\t%s\n", $2, s[1], $4}' | LC_ALL=C sort; }
jn() { LC_ALL=C join -t $'\t' -a 1 -e - -o auto "$@"; }
order="base block u1 u1block w8 base2"
for v in $order; do
  env ${ENV[$v]} MOE_SWEEP_TOKENS=1 timeout 60 $B sweep grouped_gemm --device cuda:0 --json "$out/gemm-$v.json" > "$out/gemm-$v.log" 2>&1
  e1=$?
  env ${ENV[$v]} MOE_SWEEP_TOKENS=1 timeout 60 $B sweep moe_layer --device cuda:0 --json "$out/layer-$v.json" > "$out/layer-$v.log" 2>&1
  echo "== $v: gemm exit $e1, layer exit $? (${SECONDS}s)"
  cat <(rows "$out/gemm-$v.log") <(rows "$out/layer-$v.log") | LC_ALL=C sort > "$out/$v.rows"
done
echo "T=1 (us): row | base | block | u1 | u1block | w8 | base2"
jn "$out/base.rows" "$out/block.rows" | jn - "$out/u1.rows" | jn - "$out/u1block.rows" | jn - "$out/w8.rows" | jn - "$out/base2.rows" | tr '\t' '|'
