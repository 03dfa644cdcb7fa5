#!/usr/bin/env bash
# GPU machine, after tools/gpu/pack.sh: the eighth session's closing runs.
#   bash tools/gpu/final8.sh suite   2 x H200: the whole suite with CUDA (tools/gpu/check-suite.sh)
#   bash tools/gpu/final8.sh closing 2 x H200: our layer sweep at T = 1, 16, 128 and PyTorch's layer on GPU 0, then the
#                                    whole suite with CUDA in the time left (under 590 s in all)
#   bash tools/gpu/final8.sh bench   GPU 0: `sweep routing` and PyTorch's routing chains (graph and eager, with and
#                                    without the counts), then our layer sweep at T = 1, 16, 128, PyTorch's layer, ours at T = 1 with the
#                                    GEMV's old tile walk (MOE_EXPERT_TILES_WALK=serial) and the new
# Logs in $OUT/final8-<part>.tgz; summaries on stdout.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
part=${1:?suite, closing or bench}
out=/tmp/moe-final8-$part; mkdir -p "$out"
trap 'tar czf "$OUT/final8-$part.tgz" -C "$out" .' EXIT
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
closing)
  MOE_SWEEP_TOKENS=1,16,128 timeout 110 $B sweep moe_layer --device cuda:0 --json "$out/layer.json" > "$out/layer.log" 2>&1
  echo "== layer: exit $? (${SECONDS}s)"; rows "$out/layer.log"
  (cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out" MOE_SWEEP_TOKENS=1,16,128 timeout 60 python3 moe_layer.py > "$out/ref-moe_layer.log" 2>&1)
  echo "== torch moe_layer: exit $? (${SECONDS}s)"; tail -11 "$out/ref-moe_layer.log"
  suite=$((590 - SECONDS - 150))
  WG_DEBUG_S=45 WG_S=100 SUITE_S=$suite OUT="$out" bash tools/gpu/check-suite.sh 2>&1 | grep -vE "^== wgmma-debug" | tail -40
  echo "== suite done (${SECONDS}s; the suite's own limit ${suite}s)"
  ;;
bench)
  timeout 90 $B sweep routing --device cuda:0 --json "$out/routing.json" > "$out/routing.log" 2>&1
  echo "== sweep routing: exit $? (${SECONDS}s)"
  grep -E "^\| (graph node floor|routing softmax +\||routing deepseek grouped +\|)" "$out/routing.log" | grep -v -E "T=(2048|4096) " |
    awk -F'|' '{printf "  %-28s %-24s %8s us\n", $2, $3, $4}' | sed 's/  */ /g'
  (cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out" TOKEN_OPS_ROUTING_ONLY=1 timeout 90 python3 token_ops.py > "$out/ref-routing.log" 2>&1)
  echo "== torch routing chains: exit $? (${SECONDS}s)"
  grep -E "^\| routing" "$out/ref-routing.log" | awk -F'|' '{printf "  %-28s %-24s %8s us %s\n", $2, $3, $4, $7}' | sed 's/  */ /g'
  MOE_SWEEP_TOKENS=1,16,128 timeout 150 $B sweep moe_layer --device cuda:0 --json "$out/layer-1.json" > "$out/layer-1.log" 2>&1
  echo "== layer run 1: exit $? (${SECONDS}s)"; rows "$out/layer-1.log"
  (cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out" MOE_SWEEP_TOKENS=1,16,128 timeout 150 python3 moe_layer.py > "$out/ref-moe_layer.log" 2>&1)
  echo "== torch moe_layer: exit $? (${SECONDS}s)"; tail -11 "$out/ref-moe_layer.log"
  # The GEMV's tile search A/B in the layer (T = 1: where the GEMV runs), old walk then new, each as long as time allows.
  for walk in serial parallel; do
    left=$((590 - SECONDS))
    if [ "$left" -lt 60 ]; then echo "== layer T=1, walk $walk: skipped (${SECONDS}s used)"; continue; fi
    MOE_EXPERT_TILES_WALK=$walk MOE_SWEEP_TOKENS=1 timeout "$left" $B sweep moe_layer --device cuda:0 --json "$out/layer-t1-$walk.json" > "$out/layer-t1-$walk.log" 2>&1
    echo "== layer T=1, walk $walk: exit $? (${SECONDS}s)"; rows "$out/layer-t1-$walk.log"
  done
  ;;
esac
