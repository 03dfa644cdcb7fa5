#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the layer beside PyTorch's in one run (fifth session's closing table):
# our layer sweep at T = 1, 16, 128 (the first run compiles the kernels), PyTorch's composite, our sweep again.
# Logs in $OUT/layer5.tgz; the rows on stdout.
set -uo pipefail
out=/tmp/moe-layer5; mkdir -p "$out"
trap 'tar czf "$OUT/layer5.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
rows() { grep -E "^\| .* layer " "$1" | awk -F'|' '{split($3,s," "); printf "  %-14s %-6s %9s us %6s | %s\n", $2, s[1], $4, $8, $9}' | sed -E 's/ layer +/ /'; }
MOE_SWEEP_TOKENS=1,16,128 timeout 200 $B sweep moe_layer --device cuda:0 --json "$out/layer-1.json" > "$out/layer-1.log" 2>&1
echo "== layer run 1: exit $? (${SECONDS}s)"; rows "$out/layer-1.log"
(cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out" MOE_SWEEP_TOKENS=1,16,128 timeout 150 python3 moe_layer.py > "$out/ref-moe_layer.log" 2>&1)
echo "== torch moe_layer: exit $? (${SECONDS}s)"; tail -11 "$out/ref-moe_layer.log"
MOE_SWEEP_TOKENS=1,16,128 timeout 100 $B sweep moe_layer --device cuda:0 --json "$out/layer-2.json" > "$out/layer-2.log" 2>&1
echo "== layer run 2: exit $? (${SECONDS}s)"; rows "$out/layer-2.log"
