#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the fused decode kernel's cycled trace with each kind of block apart
# (router blocks, gate_up blocks, blocks without a gate_up item), Qwen3-30B-A3B T=1 (issue 5).
set -uo pipefail
out=/tmp/moe-decode15i; mkdir -p "$out"
trap 'tar czf "$OUT/decode15i.tgz" -C "$out" .' EXIT
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
MOE_DECODE_TRACE=1 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 90 $B sweep moe_layer --device cuda:0 > "$out/trace.log" 2>&1
echo "== trace: exit $? (${SECONDS}s)"; sed -n '/forward 8 of 8/,$p' "$out/trace.log" | head -48
