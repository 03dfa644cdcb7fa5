#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (issue 5): which SMs hold the fused decode kernel's blocks. Its traced
# build now records each block's %smid: Qwen3-30B-A3B T = 1, 4 layers cycled, the whole layer and a TP rank's slice
# (MOE_SWEEP_SLICE=2). Logs in $OUT/decode17d.tgz.
set -uo pipefail
out=/tmp/moe-decode17d; mkdir -p "$out"
trap 'tar czf "$OUT/decode17d.tgz" -C "$out" .' EXIT
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
MOE_DECODE_TRACE=1 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 90 $B sweep moe_layer --device cuda:0 > "$out/trace.log" 2>&1
echo "== trace: exit $? (${SECONDS}s)"; grep -A 60 "forward 8 of" "$out/trace.log" | grep -vE "^\s*$" | head -64
MOE_DECODE_TRACE=1 MOE_SWEEP_SLICE=2 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 90 $B sweep moe_layer --device cuda:0 > "$out/trace-slice.log" 2>&1
echo "== trace slice: exit $? (${SECONDS}s)"; grep -E "SMs of|SM of blocks|^\| qwen3" "$out/trace-slice.log"
echo "== done in ${SECONDS}s"
