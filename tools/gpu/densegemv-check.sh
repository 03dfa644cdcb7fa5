#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: issue 5 / 9, small single-matrix calls (the routers at T = 1..16) on the
# decode GEMV (GroupedGemmDenseGemv: E = 1, 1..16 rows, W <= 8 MiB, kSplit 8; MOE_DENSE_GEMV=on, the default) against the
# old paths (=off: the skinny split-K kernel at 2..16 rows, the GEMV with its 2048-element warp share at 1).
#   1. CUDA tests: GroupedGemmDenseGemvTests (the rule forced on: routers at rows 1..16, N = 33 tails, K = 8 / 24 / 2048,
#      every dtype pair, fused SiLU + row scale, poisoned outputs and workspace, two runs bit-identical, switch off, graph
#      replay), GroupedGemmGemvTests, GroupedGemmSkinnyTests, GroupedGemmSkinnyFoldTests, MoeLayerSkinnyTests (layer T = 2, 17, 128).
#   2. `moe_layer` T = 1, 16 for mixtral, qwen3, deepseek: MOE_DENSE_GEMV=on, off; `dense_gemm` for the three routers at
#      T = 1, 2, 8, 16, paths auto, gemv, skinny (on), then auto with =off; the layer pair again (on, off).
#   A step that would start past 140 s is skipped (said on stdout); each has a 45 s timeout, tests 130 s.
# On stdout: test totals and failures, then the dense_gemm us per path side by side and the layer us on/off. Logs in
# $OUT/densegemv.tgz. About 3 minutes.
set -uo pipefail
out=/tmp/moe-densegemv; mkdir -p "$out"
trap 'tar czf "$OUT/densegemv.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1

timeout 130 $T -class MoeRuntime.Tests.Kernels.GroupedGemmDenseGemvTests -class MoeRuntime.Tests.Kernels.GroupedGemmGemvTests \
  -class MoeRuntime.Tests.Kernels.GroupedGemmSkinnyTests -class MoeRuntime.Tests.Kernels.GroupedGemmSkinnyFoldTests \
  -class MoeRuntime.Tests.Runtime.MoeLayerSkinnyTests > "$out/tests.log" 2>&1
echo "== tests (MOE_DENSE_GEMV on): exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -40; grep -E "\[SKIP\]" "$out/tests.log" | head -3; grep -E "Total:" "$out/tests.log"

# "| name | shape | time (us) | GB/s | TFLOP/s | floor (us) | of floor | note" -> "name T=.. [path]<TAB>time<TAB>of floor<TAB>note";
# with a second argument the key takes the note's path ("auto: ..." -> auto), as dense_gemm's rows need.
rows() { grep -E "^\| [a-z]" "$1" | grep -v "^| name" | awk -F'|' -v withPath="${2:-}" '{gsub(/^ +| +$/, "", $2); split($3, s, " ");
  gsub(/ /, "", $4); gsub(/ /, "", $8); note = $9; sub(/^ +/, "", note); path = note; sub(/:.*/, "", path);
  key = $2 " " s[1]; if (withPath != "") key = key " " path; sub(/ layer /, " ", key); printf "%s\t%s\t%s\t%s\n", key, $4, $8, note}' | LC_ALL=C sort; }
# dense_gemm rows of one path, the path dropped from the key: "name T=..<TAB>time<TAB>note" (note without "path: " and ", graph").
perpath() { rows "$1" path | awk -F'\t' -v p="$2" '{n = split($1, a, " "); if (a[n] != p) next; k = $1; sub(/ [^ ]+$/, "", k);
  note = $4; sub(/^[^:]*: /, "", note); sub(/, graph$/, "", note); printf "%s\t%s\t%s\n", k, $2, note}' | LC_ALL=C sort; }
jn() { LC_ALL=C join -t $'\t' -a 1 -e - -o auto "$@"; }

budget() { # tag: false (and a note) once the script is past its 3 minutes
  if (( SECONDS > 140 )); then echo "== $1: skipped (${SECONDS}s, over the 3-minute budget)"; return 1; fi
}
layer() { # on|off round
  local tag="layer-$1-r$2"
  budget "$tag" || return 0
  MOE_DENSE_GEMV=$1 MOE_SWEEP_MODELS=mixtral,qwen3,deepseek MOE_SWEEP_TOKENS=1,16 timeout 45 $B sweep moe_layer \
    --device cuda:0 --json "$out/$tag.json" > "$out/$tag.log" 2>&1
  echo "== $tag: exit $? (${SECONDS}s)"
  rows "$out/$tag.log" | cut -f1-3 > "$out/$tag.rows"
}
dense() { # on|off paths
  budget "dense_gemm $1" || return 0
  MOE_DENSE_GEMV=$1 MOE_DENSE_GEMM_PATHS=$2 MOE_SWEEP_TOKENS=1,2,8,16 MOE_SWEEP_MODELS="deepseek-v3 router,qwen3,mixtral" timeout 45 $B \
    sweep dense_gemm --device cuda:0 --json "$out/dense-$1.json" > "$out/dense-$1.log" 2>&1
  echo "== dense_gemm MOE_DENSE_GEMV=$1 ($2): exit $? (${SECONDS}s)"
}

# Layer round 1, the dense calls, layer round 2: on then off each round, so drift shows as a round-to-round change.
layer on 1; layer off 1
dense on auto,gemv,skinny; dense off auto
layer on 2; layer off 2

for f in dense-on dense-off; do [ -f "$out/$f.log" ] || : > "$out/$f.log"; done
perpath "$out/dense-on.log" auto > "$out/d-auto.rows"; perpath "$out/dense-on.log" gemv > "$out/d-gemv.rows"
perpath "$out/dense-on.log" skinny > "$out/d-skinny.rows"; perpath "$out/dense-off.log" auto > "$out/d-off.rows"
echo "== dense_gemm us: auto (on) / gemv / skinny / auto (off); gemv's launch | the old path's (auto, off)"
jn "$out/d-gemv.rows" "$out/d-auto.rows" | jn - "$out/d-skinny.rows" | jn - "$out/d-off.rows" |
  awk -F'\t' '{printf "  %-26s %7s / %7s / %7s / %7s  %s | %s\n", $1, $4, $2, $6, $8, $3, $9}' | LC_ALL=C sort -V
echo "== moe_layer us (of floor): on r1 / off r1 / on r2 / off r2"
for f in "$out"/layer-{on,off}-r{1,2}.rows; do [ -f "$f" ] || : > "$f"; done
jn "$out/layer-on-r1.rows" "$out/layer-off-r1.rows" | jn - "$out/layer-on-r2.rows" | jn - "$out/layer-off-r2.rows" |
  awk -F'\t' '{printf "  %-30s", $1; for (i = 2; i < NF; i += 2) printf " %8s (%4s)", $i, $(i+1); printf "\n"}' | LC_ALL=C sort -V
echo "== done (${SECONDS}s)"
