#!/usr/bin/env bash
# GPU machine, one H200 (cuda:0), after tools/gpu/pack.sh and `bash .gpu/run.sh true`: issues 9 / 5, the decode GEMV
# reading its m-tile from Permute's map (MOE_GEMV_TILE_MAP=on) instead of searching the offsets at every block's start.
#   1. The new test classes (PermuteTileMapTests, GroupedGemmGemvTileMapTests, MoeLayerGemvTileMapTests) and the touched
#      ones (PermuteTests: permute.cu; GroupedGemmGemvTests, GroupedGemmGemvExpertTilesTests: grouped_gemm_gemv.cu).
#   2. `sweep moe_layer` at T=1 with MOE_GEMV_TILE_MAP=off, on, off, on (the layer decides a default), and
#      `sweep grouped_gemm` at T=1 off, on (the GEMV rows isolated: with on they read the map of their offsets).
#   3. If time is left: the GEMV trace (MOE_GROUPED_GEMM_GEMV_TRACE=1) of Qwen3 T=1, off and on ("tile found" is the search).
# Stdout: test totals and failures, "row | off1 | on1 | off2 | on2" (us; gemm rows have "-" in off2 / on2), the traces.
# Logs in $OUT/tilemap.tgz. About 3-4 minutes.
set -uo pipefail
out=/tmp/moe-tilemap; mkdir -p "$out"
trap 'tar czf "$OUT/tilemap.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
R=MoeRuntime.Tests.Runtime
SECONDS=0

tests() { # label, timeout, classes...
  local label=$1 limit=$2; shift 2
  local args=(); for c in "$@"; do args+=(-class "$c"); done
  timeout "$limit" $T "${args[@]}" > "$out/tests-$label.log" 2>&1
  echo "== tests $label: exit $? (${SECONDS}s)"
  grep -E "\[FAIL\]" -A 8 "$out/tests-$label.log" | head -40; grep -E "Total:" "$out/tests-$label.log"
}
tests new 75 $K.PermuteTileMapTests $K.GroupedGemmGemvTileMapTests $R.MoeLayerGemvTileMapTests
tests touched 75 $K.PermuteTests $K.GroupedGemmGemvTests $K.GroupedGemmGemvExpertTilesTests

rows() { grep -E "^\| [a-z]" "$1" | grep -v "^| name" | grep -v "(cold)" | awk -F'|' '{gsub(/^ +| +$/, "", $2); split($3, s, " ");
  gsub(/ /, "", $4); printf "%s %s\t%s\n", $2, s[1], $4}' | LC_ALL=C sort; }
jn() { LC_ALL=C join -t $'\t' -a 1 -e - -o auto "$@"; }
for v in off1 on1 off2 on2; do
  map=${v%[12]}
  MOE_GEMV_TILE_MAP=$map MOE_SWEEP_TOKENS=1 timeout 45 $B sweep moe_layer --device cuda:0 --json "$out/layer-$v.json" > "$out/layer-$v.log" 2>&1
  e1=$?
  : > "$out/gemm-$v.log"; e2=skipped
  if [[ $v == *1 ]]; then
    MOE_GEMV_TILE_MAP=$map MOE_SWEEP_TOKENS=1 timeout 45 $B sweep grouped_gemm --device cuda:0 --json "$out/gemm-$v.json" > "$out/gemm-$v.log" 2>&1
    e2=$?
  fi
  echo "== MOE_GEMV_TILE_MAP=$map ($v): layer exit $e1, gemm exit $e2 (${SECONDS}s)"
  grep -c "tile map" "$out/gemm-$v.log" | sed 's/^/   gemm rows noting the tile map: /'
  cat <(rows "$out/layer-$v.log") <(rows "$out/gemm-$v.log") | LC_ALL=C sort > "$out/$v.rows"
done
echo "T=1 (us): row | off1 | on1 | off2 | on2"
jn "$out/off1.rows" "$out/on1.rows" | jn - "$out/off2.rows" | jn - "$out/on2.rows" | tr '\t' '|'

if (( SECONDS < 170 )); then
  for map in off on; do
    MOE_GEMV_TILE_MAP=$map MOE_GROUPED_GEMM_GEMV_TRACE=1 MOE_SWEEP_TOKENS=1 MOE_SWEEP_MODELS=qwen3 timeout 25 $B sweep grouped_gemm \
      --device cuda:0 > "$out/trace-$map.log" 2>&1
    echo "== GEMV trace, Qwen3 T=1, MOE_GEMV_TILE_MAP=$map: exit $? (${SECONDS}s)"
    grep -E "^gemv trace|^  " "$out/trace-$map.log" | head -24
  done
else
  echo "== GEMV traces skipped: ${SECONDS}s used"
fi
echo "== done in ${SECONDS}s"
