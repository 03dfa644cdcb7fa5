#!/usr/bin/env bash
# GPU machine, one H200, fresh (empty kernel cache), after tools/gpu/pack.sh (twenty-ninth session). final29a.sh's
# `moe demo` ran first on a fresh machine and was stopped at 90 s with nothing printed. Here: the demo cold, with the
# new compile lines on stderr (which kernels, how long each), then again warm; then tokens29c.sh (issue 3); then the
# wgmma, cluster and trace test classes (final29b.sh's first half) in what time is left. Logs in $OUT/cold29d.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-cold29d; mkdir -p "$out"
trap 'tar czf "$OUT/cold29d.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
ls ~/.cache/moe-runtime/kernels 2>/dev/null | wc -l | sed 's/^/== cached kernels before: /'
for run in cold warm; do
  start=$SECONDS
  timeout 240 $M demo > "$out/demo-$run.log" 2> "$out/demo-$run.err"
  echo "== demo $run: exit $? ($((SECONDS - start))s)"
  grep -E "^moe: compil" "$out/demo-$run.err" | head -40
  cat "$out/demo-$run.log"
done
OUT="$out" bash tools/gpu/tokens29c.sh 2>&1 | grep -v "^== done"
left=$((570 - SECONDS))
if [ $left -gt 60 ]; then
  timeout $left $T -class $K.GroupedGemmWgmmaTests -class $K.GroupedGemmWgmmaClusterTests -class $K.GroupedGemmWgmmaTraceTests > "$out/wgmma-tests.log" 2>&1
  echo "== wgmma classes: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 14 "$out/wgmma-tests.log" | head -60; grep -E "Total:" "$out/wgmma-tests.log" | tail -1
else echo "== wgmma classes skipped (${SECONDS}s)"; fi
echo "== done in ${SECONDS}s"
