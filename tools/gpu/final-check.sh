#!/usr/bin/env bash
# GPU machine, 2 GPUs: the tests touched since the last whole-suite run, EPLB under Zipf skew (with and without
# drift), and a large-T expert-parallel moe run. Logs in $OUT/final.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-final; mkdir -p "$out"
trap 'tar czf "$OUT/final.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
timeout 150 $T -class MoeRuntime.Tests.Cli.RunCommandTests -class MoeRuntime.Tests.Cli.DemoCommandTests -class MoeRuntime.Tests.Kernels.GroupedGemmTests \
  -class MoeRuntime.Tests.Kernels.GroupedGemmSplitKTests -class MoeRuntime.Tests.Runtime.MoeLayerTests -class MoeRuntime.Tests.Cli.RunEplbCommandTests \
  -class MoeRuntime.Tests.Collectives.CollectiveKernelLayoutTests > "$out/tests.log" 2>&1; echo "tests: exit $?"
grep -E "\[FAIL\]" -A 6 "$out/tests.log" | head -30; grep -E "Total:" "$out/tests.log"
timeout 120 $M bench eplb --devices cuda:0,cuda:1 --skew zipf:1.2 --drift --drift-period 16 --preset moe-e64 --tokens 4096 --steps 64 --redundant 16 --rebalance-every 4 --window 4 --dtype bf16 --json "$out/eplb-drift.json" --save-loads "$out/loads-e64.json" > "$out/eplb-drift.log" 2>&1; echo "eplb drift: exit $?"
cat "$out/eplb-drift.log" | tail -12
timeout 90 $M bench eplb --devices cuda:0,cuda:1 --skew zipf:1.2 --preset moe-e64 --tokens 4096 --steps 32 --redundant 16 --dtype bf16 --json "$out/eplb.json" > "$out/eplb.log" 2>&1; echo "eplb: exit $?"
tail -9 "$out/eplb.log"
timeout 90 $M run --model tests/Fixtures/deepseek_v3 --layer 1 --tokens 65536 --seed 7 --devices cuda:0,cuda:1 --parallel ep --dtype bf16 --output "$out/ep-big.safetensors" > "$out/ep-big.log" 2>&1; echo "ep 65536 tokens: exit $?"; tail -4 "$out/ep-big.log"
rm -f "$out/ep-big.safetensors"
