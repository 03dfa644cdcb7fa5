#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the thirteenth session's closing call (issues 5 and 9).
#   1. `sweep moe_layer` at T = 1 with the closing defaults (the fused decode kernel at one token), 4 layers cycled.
#   2. Tests with CUDA: the Runtime and Cli namespaces (the layer now fuses at T = 1 by default) and MoeDecodeTests.
# Stdout: the table (us), test totals and failures. Logs in $OUT/decode13e.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-decode13e; mkdir -p "$out"
trap 'tar czf "$OUT/decode13e.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
bash .gpu/run.sh true
MOE_SWEEP_LAYERS=4 MOE_SWEEP_TOKENS=1 timeout 70 $B sweep moe_layer --device cuda:0 > "$out/layer4-defaults.log" 2>&1
echo "== layer x4 defaults: exit $? (${SECONDS}s)"; grep -E "^\| [a-z]" "$out/layer4-defaults.log" | grep -v "^| name"
left=$((330 - SECONDS))
timeout $left $T -namespace MoeRuntime.Tests.Runtime -namespace MoeRuntime.Tests.Cli -class MoeRuntime.Tests.Kernels.MoeDecodeTests \
  -xml "$out/tests.xml" > "$out/tests.log" 2>&1
echo "== tests (Runtime, Cli, MoeDecodeTests): exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 10 "$out/tests.log" | head -60; grep -E "Total:" "$out/tests.log" | tail -1
echo "== done in ${SECONDS}s"
