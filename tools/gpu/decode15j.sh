#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: when the blocks without a gate_up item ask L2 for their down rows
# (issue 5). Qwen3 T=1, 4 layers cycled, MOE_DECODE_IDLE_PREFETCH unset (right after the routing, as before) / 0 (never)
# / 4 / 6 (once 4 or 6 eighths of the gate_up blocks have arrived at barrier 2), alternating, twice; then the fused
# tests under 4.
set -uo pipefail
out=/tmp/moe-decode15j; mkdir -p "$out"
trap 'tar czf "$OUT/decode15j.tgz" -C "$out" .' EXIT
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
source tools/gpu/ab-table.sh
order=(def i0 i4 i6 def.2 i0.2 i4.2 i6.2)
for v in "${order[@]}"; do
  key=${v%.*}; idle=""; [ "$key" != def ] && idle=${key#i}
  MOE_DECODE_IDLE_PREFETCH=$idle MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/q4-$v.log" 2>&1
  echo "== qwen3 x4 $v: exit $? (${SECONDS}s)"
done
ab_table "$out" q4 "${order[@]}"
MOE_DECODE_IDLE_PREFETCH=4 timeout 100 $T -class MoeRuntime.Tests.Kernels.MoeDecodeTests -class MoeRuntime.Tests.Runtime.MoeLayerFusedDecodeTests \
  -xml "$out/tests-i4.xml" > "$out/tests-i4.log" 2>&1
echo "== tests (i4): exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 12 "$out/tests-i4.log" | head -30; grep -E "Total:" "$out/tests-i4.log" | tail -1
