#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: the suite without the wgmma class (check-suite.sh's third step alone),
# after the capture gate (CudaAccelerator.CaptureGate). Logs in $OUT/suite9b.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-suite9b; mkdir -p "$out"
trap 'tar czf "$OUT/suite9b.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
SECONDS=0
timeout "${SUITE_S:-290}" bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll -class- MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests \
  -ctrf "$out/ctrf.json" > "$out/suite.log" 2>&1
echo "== suite: exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 10 "$out/suite.log" | head -60; grep -E "Total:" "$out/suite.log" | tail -1
