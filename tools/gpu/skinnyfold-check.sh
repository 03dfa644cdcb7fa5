#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: issue 5, the skinny split-K GEMM's reduction folded into its kernel
# (grouped_gemm_skinny.cu, MOE_SKINNY_REDUCE=fold, the default) against the reduce kernel (=kernel).
#   1. CUDA tests: GroupedGemmSkinnyFoldTests (fold vs kernel bit for bit, 1 and many splits, rows 2..128, N tails,
#      fused SiLU, row scales, f32/bf16/f16 out, back-to-back runs and counters at zero, no-counter fallback, one launch),
#      GroupedGemmSkinnyTests (the default reduction: the fold; graph replays), GroupedGemmSplitKTests (the workspace's
#      counters shared with the mma split-K tiles), MoeLayerSkinnyTests (the layer at T = 2, 17, 128).
#   2. `moe_layer` at T = 16, 128 for mixtral-8x7b, qwen3-30b-a3b, deepseek-v3 (MOE_SKINNY_REDUCE=kernel, then fold), then
#      `dense_gemm` at T = 16, 128 (paths auto, skinny-wide, skinny-narrow; kernel, then fold), then the layer pair again.
#   A step that would start past 215 s is skipped (said on stdout).
# On stdout: test totals and failures, then per row the times side by side (us). Logs in $OUT/skinnyfold.tgz. About 4 minutes.
set -uo pipefail
out=/tmp/moe-skinnyfold; mkdir -p "$out"
trap 'tar czf "$OUT/skinnyfold.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1

timeout 150 $T -class MoeRuntime.Tests.Kernels.GroupedGemmSkinnyFoldTests -class MoeRuntime.Tests.Kernels.GroupedGemmSkinnyTests \
  -class MoeRuntime.Tests.Kernels.GroupedGemmSplitKTests -class MoeRuntime.Tests.Runtime.MoeLayerSkinnyTests > "$out/tests.log" 2>&1
echo "== tests (fold default): exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -40; grep -E "\[SKIP\]" "$out/tests.log" | head -3; grep -E "Total:" "$out/tests.log"

# "| name | shape | time (us) | GB/s | TFLOP/s | floor (us) | of floor | note" -> "name T=.. [path]<TAB>time<TAB>of floor<TAB>note";
# with a second argument the key takes the note's path ("auto: ..." -> auto), as dense_gemm's rows need.
rows() { grep -E "^\| [a-z]" "$1" | grep -v "^| name" | awk -F'|' -v withPath="${2:-}" '{gsub(/^ +| +$/, "", $2); split($3, s, " ");
  gsub(/ /, "", $4); gsub(/ /, "", $8); note = $9; sub(/^ +/, "", note); path = note; sub(/:.*/, "", path);
  key = $2 " " s[1]; if (withPath != "") key = key " " path; sub(/ layer /, " ", key); printf "%s\t%s\t%s\t%s\n", key, $4, $8, note}' | LC_ALL=C sort; }
jn() { LC_ALL=C join -t $'\t' -a 1 -e - -o auto "$@"; }

budget() { # tag: false (and a note) once the script is past its 4 minutes
  if (( SECONDS > 215 )); then echo "== $1: skipped (${SECONDS}s, over the 4-minute budget)"; return 1; fi
}
layer() { # reduce round
  local tag="layer-$1-r$2"
  budget "$tag" || return 0
  MOE_SKINNY_REDUCE=$1 MOE_SWEEP_MODELS=mixtral,qwen3,deepseek MOE_SWEEP_TOKENS=16,128 timeout 60 $B sweep moe_layer \
    --device cuda:0 --json "$out/$tag.json" > "$out/$tag.log" 2>&1
  echo "== $tag: exit $? (${SECONDS}s)"
  rows "$out/$tag.log" | cut -f1-3 > "$out/$tag.rows"
}
dense() { # reduce
  budget "dense_gemm $1" || { : > "$out/dense-$1.rows"; return 0; }
  MOE_SKINNY_REDUCE=$1 MOE_DENSE_GEMM_PATHS=auto,skinny-wide,skinny-narrow MOE_SWEEP_TOKENS=16,128 timeout 45 $B sweep dense_gemm \
    --device cuda:0 --json "$out/dense-$1.json" > "$out/dense-$1.log" 2>&1
  echo "== dense_gemm, reduce $1: exit $? (${SECONDS}s)"
  rows "$out/dense-$1.log" path > "$out/dense-$1.rows"
}

# Layer round 1, the dense calls, layer round 2: each pair kernel then fold, so drift shows as a round-to-round change.
layer kernel 1; layer fold 1
dense kernel; dense fold
layer kernel 2; layer fold 2

echo "== dense_gemm us: kernel / fold (fold - kernel); fold's note"
jn "$out/dense-kernel.rows" "$out/dense-fold.rows" |
  awk -F'\t' '{printf "  %-52s %8s / %8s (%+6.2f)  %s\n", $1, $2, $5, $5 - $2, $7}' | sed -E 's/, graph$//'
echo "== moe_layer us (of floor): kernel r1 / fold r1 / kernel r2 / fold r2"
for f in "$out"/layer-{kernel,fold}-r{1,2}.rows; do [ -f "$f" ] || : > "$f"; done
jn "$out/layer-kernel-r1.rows" "$out/layer-fold-r1.rows" | jn - "$out/layer-kernel-r2.rows" | jn - "$out/layer-fold-r2.rows" |
  awk -F'\t' '{printf "  %-30s", $1; for (i = 2; i < NF; i += 2) printf " %8s (%4s)", $i, $(i+1); printf "\n"}'
echo "== done (${SECONDS}s)"
