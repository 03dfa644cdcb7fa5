#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the fourteenth session's last call (issue 5).
# Its MOE_DECODE_IDLE_PREFETCH switch (commit 16524e3) was removed after the run (it lost: docs/PERFORMANCE.md, fourteenth session).
#   1. The fused bits tests with MOE_DECODE_IDLE_PREFETCH=on (the blocks without a gate_up unit prefetch every down row).
#   2. `sweep moe_layer` Qwen3 T=1, 4 layers cycled: off / on, three times; a trace with it on.
# Stdout: test totals and failures, trace, table (us). Logs in $OUT/decode14f.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-decode14f; mkdir -p "$out"
trap 'tar czf "$OUT/decode14f.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
bash .gpu/run.sh true
MOE_DECODE_IDLE_PREFETCH=on timeout 60 $T -class MoeRuntime.Tests.Runtime.MoeLayerFusedDecodeTests > "$out/tests-idle.log" 2>&1
echo "== fused tests, idle prefetch on: exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 12 "$out/tests-idle.log" | head -40; grep -E "Total:" "$out/tests-idle.log" | tail -1
export MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1
source tools/gpu/ab-table.sh
order=(off on off.2 on.2 off.3 on.3)
for v in "${order[@]}"; do
  MOE_DECODE_IDLE_PREFETCH=${v%.*} MOE_SWEEP_LAYERS=4 timeout 40 $B sweep moe_layer --device cuda:0 > "$out/q4-$v.log" 2>&1
  echo "== qwen3 x4 idle $v: exit $? (${SECONDS}s)"
done
ab_table "$out" q4 "${order[@]}"
MOE_DECODE_IDLE_PREFETCH=on MOE_DECODE_TRACE=1 timeout 40 $B sweep moe_layer --device cuda:0 > "$out/trace-on.log" 2>&1
echo "== trace on: exit $? (${SECONDS}s)"; grep -A 11 "decode trace" "$out/trace-on.log" | grep -v "^--$"
echo "== done in ${SECONDS}s"
