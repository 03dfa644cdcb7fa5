#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-sixth session). The whole test suite on main with the decode
# GEMV's direct write (400fc06): the wgmma and trace classes first, then everything else in the time left. The last whole
# suite on the H200 ran on 1e105db (close22d.sh), before the direct write. Logs in $OUT/final26b.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-final26b; mkdir -p "$out"
trap 'tar czf "$OUT/final26b.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
timeout 200 $T -class $K.GroupedGemmWgmmaTests -class $K.GroupedGemmWgmmaTraceTests > "$out/wgmma.log" 2>&1
echo "== wgmma, trace tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 14 "$out/wgmma.log" | head -60; grep -E "Total:" "$out/wgmma.log" | tail -1
timeout $((560 - SECONDS)) $T -class- $K.GroupedGemmWgmmaTests -class- $K.GroupedGemmWgmmaTraceTests > "$out/suite.log" 2>&1
echo "== suite without them: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 14 "$out/suite.log" | head -80; grep -E "Total:" "$out/suite.log" | tail -1
echo "== done in ${SECONDS}s"
