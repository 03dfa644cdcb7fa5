#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the eighteenth session's full single-GPU layer table with the closing
# defaults (the last full one, T = 1 .. 8192, was the third session's). `sweep moe_layer` and PyTorch's composite
# (bench/reference/moe_layer.py) in the same call: T = 1, 16, 128 with 4 layers cycled (decode: each layer's weights from
# DRAM), then T = 1024, 8192 with one layer. Logs in $OUT/table18a.tgz; the tables on stdout.
set -uo pipefail
out=/tmp/moe-table18a; mkdir -p "$out/torch-decode" "$out/torch-prefill"
trap 'tar czf "$OUT/table18a.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,clocks.mem --format=csv,noheader
rows() { grep -E "^\| [a-z]|^\|---|^\| preset" "$1" | cut -c1-200; }
MOE_SWEEP_TOKENS=1,16,128 MOE_SWEEP_LAYERS=4 timeout 220 $B sweep moe_layer --device cuda:0 --json "$out/layer-decode.json" > "$out/layer-decode.log" 2>&1
echo "== ours T=1,16,128, 4 layers: exit $? (${SECONDS}s)"; rows "$out/layer-decode.log"
(cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out/torch-decode" MOE_SWEEP_TOKENS=1,16,128 MOE_SWEEP_LAYERS=4 timeout 150 python3 moe_layer.py > "$out/torch-decode.log" 2>&1)
echo "== torch T=1,16,128, 4 layers: exit $? (${SECONDS}s)"; rows "$out/torch-decode.log"
left=$((560 - SECONDS))
MOE_SWEEP_TOKENS=1024,8192 timeout $((left / 2)) $B sweep moe_layer --device cuda:0 --json "$out/layer-prefill.json" > "$out/layer-prefill.log" 2>&1
echo "== ours T=1024,8192: exit $? (${SECONDS}s)"; rows "$out/layer-prefill.log"
left=$((575 - SECONDS))
(cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out/torch-prefill" MOE_SWEEP_TOKENS=1024,8192 timeout $left python3 moe_layer.py > "$out/torch-prefill.log" 2>&1)
echo "== torch T=1024,8192: exit $? (${SECONDS}s)"; rows "$out/torch-prefill.log"
echo "== done in ${SECONDS}s"
