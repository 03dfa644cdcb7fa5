#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (thirtieth session). next30d.sh's suite failed two tests together: the
# new LayerBench graph test's capture forked the layer's shared-experts stream, and another test's Accelerator.Synchronize
# synchronised that stream, which broke the capture and failed the synchronize. A stream that waits on an event recorded
# in a capture now counts as capturing. Here: ConcurrentCaptureTests (with the forked-stream case), then the whole suite
# except the wgmma, cluster and trace classes again. Logs in $OUT/next30e.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-next30e; mkdir -p "$out"
trap 'tar czf "$OUT/next30e.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
timeout 60 $T -class MoeRuntime.Tests.Accelerators.ConcurrentCaptureTests > "$out/capture-tests.log" 2>&1
echo "== ConcurrentCaptureTests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 14 "$out/capture-tests.log" | head -30; grep -E "Total:" "$out/capture-tests.log" | tail -1
timeout $((580 - SECONDS)) $T -class- $K.GroupedGemmWgmmaTests -class- $K.GroupedGemmWgmmaClusterTests -class- $K.GroupedGemmWgmmaTraceTests > "$out/suite.log" 2>&1
echo "== suite: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 14 "$out/suite.log" | head -80; grep -E "Total:" "$out/suite.log" | tail -1
echo "== done in ${SECONDS}s"
