#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (thirty-second session). The final code (the join and the stream rule
# reverted; the shared-routing files kept): `moe demo`, then the Runtime and Cli namespaces. Logs in $OUT/final32g.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-final32g; mkdir -p "$out"
trap 'tar czf "$OUT/final32g.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
SECONDS=0
timeout 60 $M demo > "$out/demo.log" 2> "$out/demo.err"; echo "== demo: exit $? (${SECONDS}s)"; cat "$out/demo.log" | tail -14
timeout 150 $T -namespace MoeRuntime.Tests.Runtime -namespace MoeRuntime.Tests.Cli > "$out/tests.log" 2>&1
echo "== Runtime + Cli tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 10 "$out/tests.log" | head -30; grep -E "Total:" "$out/tests.log" | tail -1
echo "== done in ${SECONDS}s"
