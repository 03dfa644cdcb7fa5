#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the fifteenth session's closing call (issue 5).
#   1. `sweep moe_layer` T=1, 4 layers cycled, every preset, closing defaults (barrier 2's arrival before the down
#      prefetches); Qwen3 twice more; a cycled trace of Qwen3 (code cold and warm).
#   2. Tests with CUDA: the Runtime and Accelerators namespaces, and MoeDecodeTests.
#   3. PyTorch's layer with 4 layers cycled, if time is left.
# Stdout: tables (us), traces, test totals and failures. Logs in $OUT/decode15e.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-decode15e; mkdir -p "$out"
trap 'tar czf "$OUT/decode15e.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
bash .gpu/run.sh true
MOE_SWEEP_LAYERS=4 MOE_SWEEP_TOKENS=1 timeout 120 $B sweep moe_layer --device cuda:0 > "$out/layer4-defaults.log" 2>&1
echo "== layer x4 defaults: exit $? (${SECONDS}s)"; grep -E "^\| [a-z]" "$out/layer4-defaults.log" | grep -v "^| name"
for i in 2 3; do
  MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/q4-$i.log" 2>&1
  echo "== qwen3 x4 run $i: exit $? (${SECONDS}s)"; grep -E "^\| qwen3" "$out/q4-$i.log"
done
MOE_DECODE_TRACE=1 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/trace.log" 2>&1
echo "== trace: exit $? (${SECONDS}s)"; grep -A 12 "decode trace" "$out/trace.log" | grep -v -- "--" | head -26

left=$((420 - SECONDS))
timeout $left $T -namespace MoeRuntime.Tests.Runtime -namespace MoeRuntime.Tests.Accelerators -xml "$out/tests-ns.xml" > "$out/tests-ns.log" 2>&1
echo "== tests (Runtime, Accelerators): exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 12 "$out/tests-ns.log" | head -60; grep -E "Total:" "$out/tests-ns.log" | tail -1
left=$((500 - SECONDS))
timeout $left $T -class MoeRuntime.Tests.Kernels.MoeDecodeTests -xml "$out/tests-decode.xml" > "$out/tests-decode.log" 2>&1
echo "== tests (MoeDecodeTests): exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 12 "$out/tests-decode.log" | head -40; grep -E "Total:" "$out/tests-decode.log" | tail -1
left=$((560 - SECONDS))
if [ $left -gt 40 ]; then
  (cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out" MOE_SWEEP_LAYERS=4 timeout $left python3 moe_layer.py > "$out/ref-moe_layer.log" 2>&1)
  echo "== torch layer x4: exit $? (${SECONDS}s)"; tail -8 "$out/ref-moe_layer.log"
fi
echo "== done in ${SECONDS}s"
