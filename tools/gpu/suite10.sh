#!/usr/bin/env bash
# GPU machine, after tools/gpu/pack.sh: the test namespaces this session's changes reach (Kernels, Runtime, Cli; the wgmma
# class passed on its own in final10.sh), with CUDA, in SUITE_S seconds (default 330). Logs in $OUT/suite10.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-suite10; mkdir -p "$out"
trap 'tar czf "$OUT/suite10.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
SECONDS=0
timeout "${SUITE_S:-330}" bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll -namespace MoeRuntime.Tests.Kernels \
  -namespace MoeRuntime.Tests.Runtime -namespace MoeRuntime.Tests.Cli -class- MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests \
  -ctrf "$out/ctrf.json" > "$out/suite.log" 2>&1
echo "== suite (Kernels, Runtime, Cli): exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 10 "$out/suite.log" | head -60; grep -E "Total:" "$out/suite.log" | tail -1
