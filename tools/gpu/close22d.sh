#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-second session, closing build: dynamic stays the default; the
# bounded and auto orders remain as A/B switches). The wgmma and trace classes, then the whole suite without them.
# Logs in $OUT/close22d.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-close22d; mkdir -p "$out"
trap 'tar czf "$OUT/close22d.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
SECONDS=0
timeout 200 $T -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTraceTests > "$out/wgmma.log" 2>&1
echo "== wgmma, trace tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 14 "$out/wgmma.log" | head -60; grep -E "Total:" "$out/wgmma.log" | tail -1
timeout $((530 - SECONDS)) $T -class- MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests -class- MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTraceTests > "$out/suite.log" 2>&1
echo "== suite without them: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 14 "$out/suite.log" | head -80; grep -E "Total:" "$out/suite.log" | tail -1
echo "== done in ${SECONDS}s"
