#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh. Written in the twenty-seventh session for the next one; not yet run.
# Mixtral-8x7B's down at T = 8192 on random weights took 0.84-0.92x torch._grouped_mm (prefill27g.sh, clocks27h.sh), and
# nvidia-smi read lower SM clocks through our rows. Do the existing switches that change the wgmma kernel's L2 reuse
# move it, and its clock? Each variant in its own process with the clock sampled (as clocks27h.sh), torch between,
# two rounds: the default (dynamic order, 8 m-tiles a group, the smem epilogue), MOE_GROUPED_GEMM_WGMMA_GROUP_M=4 and
# 16, the static order, and the direct epilogue. Each row's note also gives its SM clock and power as NVML read them
# (MOE_SWEEP_CLOCKS=1, written in the twenty-seventh session and not yet run on a GPU; GpuClockSamplerTests runs first,
# and if it fails the notes' clock figures cannot be trusted). Logs in $OUT/down28a.tgz.
set -uo pipefail
out=/tmp/moe-down28a; mkdir -p "$out"
trap 'tar czf "$OUT/down28a.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
timeout 60 bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll -class MoeRuntime.Tests.Accelerators.GpuClockSamplerTests \
  > "$out/clock-tests.log" 2>&1
echo "== GpuClockSamplerTests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]|\[SKIP\]" -A 6 "$out/clock-tests.log" | head -20; grep -E "Total:" "$out/clock-tests.log" | tail -1
sampled() { local name=$1; shift
  nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu --format=csv,noheader -lms 50 > "$out/smi-$name.csv" 2>&1 &
  local smi=$!; "$@" > "$out/$name.log" 2>&1; local rc=$?; kill $smi 2>/dev/null; wait $smi 2>/dev/null
  echo "== $name: exit $rc (${SECONDS}s)"; grep -E "^\| mixtral.*T=8192" "$out/$name.log" | cut -c1-100
  grep -E "^\| mixtral.*T=8192" "$out/$name.log" | grep -oE "SM [0-9]+ MHz[^|]*|clock: [^|]*" | sed 's/^/   /'
  # Every reading in order (nvidia-smi refreshes them every ~100 ms; power.draw is an average over about a second, so
  # it lags the kernels: read the clock, not the power, against the rows' times).
  awk -F', ' '{gsub(/ MHz/,"",$2); gsub(/ W/,"",$3); k=$2"/"int($3); if (k!=last) { printf "%s ", k; last=k } } END { print "" }' \
    "$out/smi-$name.csv" | fold -w 150 | sed 's/^/   MHz\/W: /'; }
declare -A envs=([def]="" [g4]="MOE_GROUPED_GEMM_WGMMA_GROUP_M=4" [g16]="MOE_GROUPED_GEMM_WGMMA_GROUP_M=16"
                 [static]="MOE_GROUPED_GEMM_WGMMA_SCHEDULE=static" [direct]="MOE_GROUPED_GEMM_WGMMA_EPILOGUE=direct")
for round in 1 2; do
  for v in def g4 g16 static direct; do
    [ $SECONDS -lt 480 ] || { echo "== stopped at ${SECONDS}s"; break 2; }
    sampled $v.$round env ${envs[$v]} MOE_SWEEP_CLOCKS=1 MOE_SWEEP_WEIGHTS=random MOE_SWEEP_MODELS=mixtral MOE_SWEEP_TOKENS=8192 timeout 60 $B sweep grouped_gemm --device cuda:0
  done
  sampled torch.$round bash -c "cd bench/reference && MOE_SWEEP_CLOCKS=1 MOE_SWEEP_WEIGHTS=random MOE_SWEEP_MODELS=mixtral MOE_SWEEP_TOKENS=8192 timeout 40 python3 grouped_gemm.py"
done
echo "== done in ${SECONDS}s"
