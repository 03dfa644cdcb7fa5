#!/usr/bin/env bash
# Runs on the GPU machine (after tools/gpu/pack.sh here, with .gpu carried): the device report, the
# whole test suite with CUDA present, and the sweeps named in $SWEEPS (default: all), writing logs
# and JSON under $OUT. Usage: bash tools/gpu/run-suite.sh [test runner args...]
set -uo pipefail
final=${OUT:-/tmp/moe-out}
out=/tmp/moe-work
mkdir -p "$out" "$final"
# Everything is packed into one archive at the end: the device tool brings back at most 8 files.
trap 'tar czf "$final/results.tgz" -C "$out" .' EXIT
run="bash .gpu/run.sh dotnet"
nvidia-smi --query-gpu=index,name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader
$run .gpu/app/MoeRuntime.Cli/moe.dll devices
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  $run .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll -ctrf "$out/ctrf.json" "$@" > "$out/tests.log" 2>&1
  echo "tests exit $?"
  grep -cE "\[FAIL\]" "$out/tests.log"
  grep -E '\[FAIL\]' -A 12 "$out/tests.log" | head -90
  grep -E 'Total:' "$out/tests.log"
  python3 - "$out/ctrf.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["results"]["summary"]
print(f"{s.get('passed',0)} passed, {s.get('failed',0)} failed, {s.get('skipped',0)} skipped")
PY
fi
for sweep in ${SWEEPS:-}; do
  $run .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll sweep "$sweep" --json "$out/sweep-$sweep.json" 2>&1 | tee "$out/sweep-$sweep.log"
done
for ref in ${REFS:-}; do
  PYTHONUNBUFFERED=1 OUT="$out" python3 "bench/reference/$ref.py" 2>&1 | tee "$out/ref-$ref.log"
done
