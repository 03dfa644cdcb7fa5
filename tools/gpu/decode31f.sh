#!/usr/bin/env bash
# GPU machine, one H200, fresh (empty kernel cache), after tools/gpu/pack.sh (thirty-first session, last call).
# moe_decode.cu now builds one dtype's entry a compile (MD_ONE_DTYPE). `moe demo` cold with its compile lines, then the
# decode classes and the Runtime namespace. Logs in $OUT/decode31f.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-decode31f; mkdir -p "$out"
trap 'tar czf "$OUT/decode31f.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
SECONDS=0
timeout 60 $M demo > "$out/demo-cold.log" 2> "$out/demo-cold.err"; echo "== demo cold: exit $? (${SECONDS}s)"
grep -E "^moe: compil" "$out/demo-cold.err"; grep -E "pass|fail" "$out/demo-cold.log" | head -12
for f in "-class MoeRuntime.Tests.Kernels.MoeDecodeTests" "-namespace MoeRuntime.Tests.Runtime"; do
  timeout 120 $T $f > "$out/tests.log" 2>&1
  echo "== $f: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 10 "$out/tests.log" | head -30; grep -E "Total:" "$out/tests.log" | tail -1
  mv "$out/tests.log" "$out/tests-${f##*.}.log"
done
echo "== done in ${SECONDS}s"
