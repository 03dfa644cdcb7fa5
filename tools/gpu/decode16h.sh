#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the final head's fused decode classes (the kernel against its CPU twin,
# its host side, the layer's fused path) and the Qwen3 TP slice alone, raised split against the chain's, one run each.
set -uo pipefail
out=/tmp/moe-decode16h; mkdir -p "$out"
trap 'tar czf "$OUT/decode16h.tgz" -C "$out" .' EXIT
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
timeout 120 $T -class MoeRuntime.Tests.Kernels.MoeDecodeTwinTests -class MoeRuntime.Tests.Kernels.MoeDecodeTests \
  -class MoeRuntime.Tests.Runtime.MoeLayerFusedDecodeTests -xml "$out/tests.xml" > "$out/tests.log" 2>&1
echo "== tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 12 "$out/tests.log" | head -40; grep -E "Total:" "$out/tests.log"
for v in auto chain; do
  MOE_DECODE_GATE_UP_SPLIT=$v MOE_SWEEP_SLICE=2 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 40 $B sweep moe_layer --device cuda:0 > "$out/slice-$v.log" 2>&1
  echo "== slice $v: exit $? (${SECONDS}s) $(grep -E "^\| qwen3" "$out/slice-$v.log" | cut -c1-110)"
done
