#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (fourth session): tools/gpu/skinny-check.sh with the dense sweep narrowed
# to the paths that decide (auto = the layer's default, the skinny tiles, K shares), then the DeepSeek-V3 layer with the
# shared experts on the forward's stream (MOE_LAYER_SHARED_STREAM=0) for the A/B against skinny-check's default rows.
set -uo pipefail
out=/tmp/moe-run4b; mkdir -p "$out"
trap 'tar czf "$OUT/run4b.tgz" -C "$out" .' EXIT
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
MOE_DENSE_GEMM_PATHS=auto,skinny-wide,skinny-narrow,skinny-k2,skinny-k4,decode64 bash tools/gpu/skinny-check.sh 2>&1 | cut -c1-150
MOE_LAYER_SHARED_STREAM=0 timeout 60 $M bench layer --preset deepseek-v3 --tokens 16,128 --device cuda:0 --json "$out/layer-one-stream.json" > "$out/layer-one-stream.log" 2>&1
echo "== layer deepseek-v3, shared experts on the forward's stream: exit $?"; grep -vE "^moe bench layer: generating" "$out/layer-one-stream.log" | tail -4
timeout 60 $M bench layer --preset deepseek-v3 --tokens 16,128 --device cuda:0 --json "$out/layer-two-streams.json" > "$out/layer-two-streams.log" 2>&1
echo "== layer deepseek-v3, shared experts on their own stream (default): exit $?"; grep -vE "^moe bench layer: generating" "$out/layer-two-streams.log" | tail -4
echo "== done (${SECONDS}s)"
