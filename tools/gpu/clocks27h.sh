#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-seventh session, issue 9). Mixtral-8x7B at T = 8192 on random
# weights, ours and torch._grouped_mm alternating twice, with the SM clock and power sampled every 50 ms by nvidia-smi
# through each process: is our down*w, 0.84-0.92x torch's in prefill27g, held by the clock? Logs in $OUT/clocks27h.tgz.
# (Run as written. Its summary line, the mean clock over samples above 400 W, mixes in the idle moments after the
# previous process: power.draw is an average over about a second. The CSVs in the logs hold every reading.)
set -uo pipefail
out=/tmp/moe-clocks27h; mkdir -p "$out"
trap 'tar czf "$OUT/clocks27h.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
sampled() { local name=$1; shift
  nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu --format=csv,noheader -lms 50 > "$out/smi-$name.csv" 2>&1 &
  local smi=$!; "$@" > "$out/$name.log" 2>&1; local rc=$?; kill $smi 2>/dev/null; wait $smi 2>/dev/null
  echo "== $name: exit $rc (${SECONDS}s)"; grep -E "^\| mixtral.*T=8192" "$out/$name.log" | cut -c1-100
  awk -F', ' '{gsub(/ MHz/,"",$2); gsub(/ W/,"",$3); if ($3+0 > 400) { n++; c+=$2; p+=$3; if (min==""||$2<min) min=$2 } }
    END { if (n) printf "   samples over 400 W: %d, SM clock mean %.0f MHz (min %d), power mean %.0f W\n", n, c/n, min, p/n }' "$out/smi-$name.csv"; }
for pass in 1 2; do
  [ $SECONDS -lt 100 ] || break
  sampled ours-$pass env MOE_SWEEP_WEIGHTS=random MOE_SWEEP_MODELS=mixtral MOE_SWEEP_TOKENS=8192 timeout 40 $B sweep grouped_gemm --device cuda:0
  sampled torch-$pass bash -c "cd bench/reference && MOE_SWEEP_WEIGHTS=random MOE_SWEEP_MODELS=mixtral MOE_SWEEP_TOKENS=8192 timeout 30 python3 grouped_gemm.py"
done
echo "== done in ${SECONDS}s"
