#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-eighth session, issue 9). Mixtral-8x7B's down at T = 8192 on
# random weights, each process timing that call alone (MOE_SWEEP_CALLS=down): ours unpaired, ours paired
# (MOE_GROUPED_GEMM_WGMMA_CLUSTER=2) and torch._grouped_mm, in three rotated orders. Our sweep ran down after two gate_up
# rows and torch after one, so our down ran later in a hot process; here each runs first. nvidia-smi samples the SM
# clock, power, temperature and why the clock is held (clocks_event_reasons: 0x4 software power cap, 0x8 hardware
# slowdown, 0x20 / 0x40 software / hardware thermal, 0x80 power brake). Then the wgmma test classes, unpaired. Logs in
# $OUT/clocks28f.tgz.
set -uo pipefail
out=/tmp/moe-clocks28f; mkdir -p "$out"
trap 'tar czf "$OUT/clocks28f.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
nvidia-smi --help-query-gpu > "$out/query-fields.txt" 2>&1
fields=timestamp,clocks.sm,power.draw,temperature.gpu,clocks_event_reasons.active
nvidia-smi --query-gpu=$fields --format=csv,noheader > /dev/null 2>&1 || fields=timestamp,clocks.sm,power.draw,temperature.gpu,clocks_throttle_reasons.active
echo "== fields: $fields"
export MOE_SWEEP_CLOCKS=1 MOE_SWEEP_WEIGHTS=random MOE_SWEEP_MODELS=mixtral MOE_SWEEP_TOKENS=8192 MOE_SWEEP_CALLS=down
sampled() { local name=$1; shift
  nvidia-smi --query-gpu=$fields --format=csv,noheader -lms 50 > "$out/smi-$name.csv" 2>&1 &
  local smi=$!; "$@" > "$out/$name.log" 2>&1; local rc=$?; kill $smi 2>/dev/null; wait $smi 2>/dev/null
  echo "== $name: exit $rc (${SECONDS}s)"; grep -E "^\| mixtral" "$out/$name.log" | sed -E 's/ +\|/ |/g' | cut -c1-200
  # Runs of equal (clock MHz / power W / temperature C / reasons) readings, in order.
  awk -F', ' '{gsub(/ MHz/,"",$2); gsub(/ W/,"",$3); k=$2"/"int($3)"/"$4"/"$5; if (k!=last) { printf "%s ", k; last=k } } END { print "" }' \
    "$out/smi-$name.csv" | fold -w 160 | sed 's/^/   /'; }
ours() { sampled $1 env MOE_GROUPED_GEMM_WGMMA_CLUSTER=$2 timeout 60 $B sweep grouped_gemm --device cuda:0; }
torch() { sampled $1 bash -c "cd bench/reference && timeout 40 python3 grouped_gemm.py"; }
for round in 1 2 3; do
  case $round in
    1) ours c1.1 1; torch torch.1; ours c2.1 2;;
    2) torch torch.2; ours c2.2 2; ours c1.2 1;;
    3) ours c2.3 2; ours c1.3 1; torch torch.3;;
  esac
done
# The wgmma class unpaired, on the kernel source this session changed (the unit walk, the X bytes of a tile).
timeout 200 bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests \
  -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTraceTests > "$out/wgmma-tests.log" 2>&1
echo "== wgmma tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 12 "$out/wgmma-tests.log" | head -40; grep -E "Total:" "$out/wgmma-tests.log" | tail -1
echo "== done in ${SECONDS}s"
