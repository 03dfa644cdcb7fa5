#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh. Written in the twenty-eighth session; run in the twenty-ninth.
# The twenty-eighth session changed grouped_gemm_wgmma.cu (the paired build, the unit walk, the X bytes of a tile) and ran
# only the wgmma, trace and cluster classes on it. Here: `moe demo`, then the suite without those three classes. Then
# final29b.sh. Logs in $OUT/final29a.tgz. Ran on 7c86bce: the demo, first on a fresh machine, was stopped at 90 s while
# NVRTC compiled (cold29d.sh measured why); the suite passed.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-final29a; mkdir -p "$out"
trap 'tar czf "$OUT/final29a.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
timeout 90 $M demo > "$out/demo.log" 2>&1
echo "== demo: exit $? (${SECONDS}s)"; tail -12 "$out/demo.log"
timeout $((580 - SECONDS)) $T -class- $K.GroupedGemmWgmmaTests -class- $K.GroupedGemmWgmmaClusterTests -class- $K.GroupedGemmWgmmaTraceTests \
  > "$out/suite.log" 2>&1
echo "== suite without the wgmma classes: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 14 "$out/suite.log" | head -80; grep -E "Total:" "$out/suite.log" | tail -1
echo "== done in ${SECONDS}s"
