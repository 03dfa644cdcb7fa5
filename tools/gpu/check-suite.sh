#!/usr/bin/env bash
# GPU machine, after tools/gpu/pack.sh: the device report, the Hopper-only kernel's debug tests and its
# tests in their own processes (a trapped kernel poisons its CUDA context), then the whole suite without
# them. Logs and the CTRF report go to $OUT/suite.tgz; a summary goes to stdout.
# Time: on one H200 the suite took 52 s on a machine that had run it before, but over 212 s (stopped) as the first run on a
# fresh machine after the layer sweeps (2026-11-30; likely NVRTC compiling the tests' own builds): give SUITE_S 300 or more there.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-suite; mkdir -p "$out"
trap 'tar czf "$OUT/suite.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM   # a stopped run still packs what it has
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
summary() { echo "== $1: exit $2"; grep -E "\[FAIL\]" "$out/$1.log" | head -20; grep -E "Total:" "$out/$1.log" | tail -1; }
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll devices > "$out/devices.log" 2>&1; head -20 "$out/devices.log"
timeout "${WG_DEBUG_S:-90}" $T -method "*DebugTmaBoxLandsSwizzled" -method "*DebugOneKStepOfWgmma" > "$out/wgmma-debug.log" 2>&1; summary wgmma-debug $?
grep -E "\[FAIL\]" -A 10 "$out/wgmma-debug.log" | head -40
timeout "${WG_S:-120}" $T -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests -class MoeRuntime.Tests.Accelerators.CudaTensorMapTests > "$out/wgmma.log" 2>&1; summary wgmma $?
grep -E "\[FAIL\]" -A 6 "$out/wgmma.log" | head -30
timeout "${SUITE_S:-360}" $T -class- MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests -ctrf "$out/ctrf.json" "$@" > "$out/suite.log" 2>&1; summary suite $?
grep -E "\[FAIL\]" -A 12 "$out/suite.log" | head -120
python3 - "$out/ctrf.json" <<'PY'
import json, sys
try:
    s = json.load(open(sys.argv[1]))["results"]["summary"]
    print(f"suite: {s.get('passed',0)} passed, {s.get('failed',0)} failed, {s.get('skipped',0)} skipped")
except Exception as e:
    print("no ctrf report:", e)
PY
