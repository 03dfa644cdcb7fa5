#!/usr/bin/env bash
# GPU machine, after tools/gpu/pack.sh: the fused decode kernel against its CPU twin (x2-16d's failure was the test's own
# expected split at H = 4096, I = 512: the rule raises it to 8, not 2), and its host-side tests. Logs in $OUT/x2-16e.tgz.
set -uo pipefail
out=/tmp/moe-x2-16e; mkdir -p "$out"
trap 'tar czf "$OUT/x2-16e.tgz" -C "$out" .' EXIT
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
SECONDS=0
timeout 150 $T -class MoeRuntime.Tests.Kernels.MoeDecodeTwinTests -class MoeRuntime.Tests.Kernels.MoeDecodeTests -xml "$out/tests.xml" > "$out/tests.log" 2>&1
echo "== tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 12 "$out/tests.log" | head -60; grep -E "Total:" "$out/tests.log"
