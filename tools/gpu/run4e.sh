#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh (fourth session): the classes changed after the closing suite run:
# the skinny rule (GroupedGemmSkinnyTests, MoeLayerSkinnyTests), the EP launch list (EpHostOpsTests, two GPUs), the
# routing sigmoid bits (TopKRoutingSigmoidBitsTests).
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-run4e; mkdir -p "$out"
trap 'tar czf "$OUT/run4e.tgz" -C "$out" .' EXIT
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
timeout 170 $T -class MoeRuntime.Tests.Kernels.GroupedGemmSkinnyTests -class MoeRuntime.Tests.Runtime.MoeLayerSkinnyTests \
  -class MoeRuntime.Tests.Scaling.EpHostOpsTests -class MoeRuntime.Tests.Kernels.TopKRoutingSigmoidBitsTests > "$out/tests.log" 2>&1
echo "== tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 6 "$out/tests.log" | head -30; grep -E "Total:" "$out/tests.log"
