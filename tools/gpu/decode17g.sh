#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (issue 5): the layer's new default at T = 1, the fused decode kernel only
# where one token's routed experts weigh at most 512 MB (Qwen3-30B-A3B; Mixtral-8x7B and DeepSeek-V3 run the chain).
# `sweep moe_layer` T = 1, 4 layers cycled, every preset (the note says which ran), then the fused decode layer classes.
# Logs in $OUT/decode17g.tgz.
set -uo pipefail
out=/tmp/moe-decode17g; mkdir -p "$out"
trap 'tar czf "$OUT/decode17g.tgz" -C "$out" .' EXIT
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 150 $B sweep moe_layer --device cuda:0 > "$out/layer-default.log" 2>&1
echo "== layer default: exit $? (${SECONDS}s)"; grep -E "^\| [a-z]" "$out/layer-default.log" | grep -v "^| name" | cut -c1-230
timeout 100 $T -class MoeRuntime.Tests.Runtime.MoeLayerFusedDecodeTests -class MoeRuntime.Tests.Kernels.MoeDecodeTests -xml "$out/tests.xml" > "$out/tests.log" 2>&1
echo "== tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 12 "$out/tests.log" | head -30; grep -E "Total:" "$out/tests.log"
echo "== done in ${SECONDS}s"
