#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: the seventh session's closing runs.
#   bash tools/gpu/final7.sh suite   the whole suite with CUDA (tools/gpu/check-suite.sh)
#   bash tools/gpu/final7.sh layer   GPU 0: our layer sweep at T = 1, 16, 128, PyTorch's layer, ours again (as layer5.sh)
# Logs in $OUT/final7-<part>.tgz (the scripts' own tarballs beside it); summaries on stdout.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
part=${1:?suite or layer}
out=/tmp/moe-final7-$part; mkdir -p "$out"
trap 'tar czf "$OUT/final7-$part.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
bash .gpu/run.sh true
rows() { grep -E "^\| .* layer " "$1" | awk -F'|' '{split($3,s," "); printf "  %-14s %-6s %9s us %6s | %s\n", $2, s[1], $4, $8, $9}' | sed -E 's/ layer +/ /'; }
case $part in
suite)
  WG_DEBUG_S=60 WG_S=110 SUITE_S=330 OUT="$out" bash tools/gpu/check-suite.sh 2>&1 | grep -vE "^== wgmma-debug" | tail -45
  echo "== suite done (${SECONDS}s)"
  ;;
layer)
  MOE_SWEEP_TOKENS=1,16,128 timeout 120 $B sweep moe_layer --device cuda:0 --json "$out/layer-1.json" > "$out/layer-1.log" 2>&1
  echo "== layer run 1: exit $? (${SECONDS}s)"; rows "$out/layer-1.log"
  (cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out" MOE_SWEEP_TOKENS=1,16,128 timeout 150 python3 moe_layer.py > "$out/ref-moe_layer.log" 2>&1)
  echo "== torch moe_layer: exit $? (${SECONDS}s)"; tail -11 "$out/ref-moe_layer.log"
  MOE_SWEEP_TOKENS=1,16,128 timeout $((585 - SECONDS)) $B sweep moe_layer --device cuda:0 --json "$out/layer-2.json" > "$out/layer-2.log" 2>&1
  echo "== layer run 2: exit $? (${SECONDS}s)"; rows "$out/layer-2.log"
  ;;
esac
