#!/usr/bin/env bash
# GPU machine, one H200 (GPU 0 of whatever is lent), after tools/gpu/pack.sh: issue 5/9, which kernel the routed experts
# should take at T = 16 when an expert has one or two rows. The wgmma kernel takes every call of 64 rows or more
# (MinRows); at Qwen3-30B-A3B T=16 that is ~81 active experts x 6 tiles of 256 columns = ~486 tiles of 1 MB over 132 SMs
# (3.7 waves), 85% of the copy floor. MOE_GROUPED_GEMM_WGMMA=0 hands those calls to the 16-row decode128 tile (24 tiles an
# expert, split-K by the wave model), the tile that streams Mixtral T=16 at 90-93%.
#   1. sweep grouped_gemm, qwen3 and deepseek, T=16: default (wgmma) and MOE_GROUPED_GEMM_WGMMA=0 (decode128);
#   2. sweep moe_layer, qwen3 and deepseek, T=16: default, off, default, off.
# Logs in $OUT/qwen16.tgz; tables on stdout. About 2.5 minutes.
set -uo pipefail
out=/tmp/moe-qwen16; rm -rf "$out"; mkdir -p "$out"
trap 'tar czf "$OUT/qwen16.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
budget=${QWEN16_BUDGET:-170}
rows() { grep -E "^\| [a-z]" "$1" | grep -v "^| name" | awk -F'|' '{gsub(/^ +| +$/, "", $2); split($3, s, " ");
  gsub(/ /, "", $4); gsub(/ /, "", $8); note = $9; sub(/^ +/, "", note); key = $2 " " s[1]; sub(/ layer /, " ", key);
  printf "%s\t%s\t%s\t%s\n", key, $4, $8, note}' | LC_ALL=C sort; }
jn() { LC_ALL=C join -t $'\t' -a 1 -e - -o auto "$@"; }
run() { # tag, sweep, wgmma switch, timeout
  if (( SECONDS > budget )); then echo "== $1: skipped (${SECONDS}s)"; : > "$out/$1.rows"; return; fi
  MOE_GROUPED_GEMM_WGMMA=$3 MOE_SWEEP_MODELS=qwen3,deepseek MOE_SWEEP_TOKENS=16 timeout "$4" $B sweep "$2" --device cuda:0 \
    --json "$out/$1.json" > "$out/$1.log" 2>&1
  echo "== $1 (MOE_GROUPED_GEMM_WGMMA=$3): exit $? (${SECONDS}s)"
  rows "$out/$1.log" > "$out/$1.rows"
}
run gg-on grouped_gemm 1 50
run gg-off grouped_gemm 0 50
run layer-on1 moe_layer 1 35
run layer-off1 moe_layer 0 35
run layer-on2 moe_layer 1 35
run layer-off2 moe_layer 0 35
echo "== grouped_gemm T=16 us (of floor): wgmma (default) | decode128 (MOE_GROUPED_GEMM_WGMMA=0); notes"
jn "$out/gg-on.rows" "$out/gg-off.rows" | awk -F'\t' '{printf "  %-42s %9s (%4s) | %9s (%4s)   %s | %s\n", $1, $2, $3, $5, $6, $4, $7}'
echo "== moe_layer T=16 us (of floor): on r1 / off r1 / on r2 / off r2"
jn "$out/layer-on1.rows" "$out/layer-off1.rows" | jn - "$out/layer-on2.rows" | jn - "$out/layer-off2.rows" |
  awk -F'\t' '{printf "  %-30s", $1; for (i = 2; i <= NF; i += 3) printf " %8s (%4s)", $i, $(i+1); printf "\n"}'
echo "== done (${SECONDS}s)"
