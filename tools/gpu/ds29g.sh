#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-ninth session, issue 5). DeepSeek-V3's layer at T = 128, 4
# layers cycled: graph-replayed it read 3.58 ms in layers29f.sh's full table (eager 3.26), 3.42 in final26c.sh's, but
# 3.225 when run alone (mix26d.sh). Here each side alone in its process, alternating (ours, torch, torch, ours), then
# ours after its T = 1 and 16 rows as in the table, with nvidia-smi sampling the SM clock, power and throttle reasons
# every 100 ms throughout. Logs in $OUT/ds29g.tgz.
set -uo pipefail
out=/tmp/moe-ds29g; mkdir -p "$out"
trap 'kill $smi 2>/dev/null; tar czf "$OUT/ds29g.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
SECONDS=0
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,clocks_throttle_reasons.active --format=csv,noheader -lms 100 > "$out/smi.csv" 2>&1 &
smi=$!
mark() { echo "$(date +%Y/%m/%d\ %H:%M:%S.%3N) $1" >> "$out/marks.txt"; }
ours() { mark "ours $1 start"; timeout 90 $M bench layer --preset deepseek-v3 --tokens $2 --layers 4 > "$out/ours-$1.log" 2>&1
         echo "== ours $1 (T=$2): exit $? (${SECONDS}s)"; grep -hE "^deepseek" "$out/ours-$1.log"; mark "ours $1 end"; }
torch() { mark "torch $1 start"; (cd bench/reference && PYTHONUNBUFFERED=1 MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=128 MOE_SWEEP_LAYERS=4 \
            timeout 120 python3 moe_layer.py > "$out/torch-$1.log" 2>&1)
          echo "== torch $1: exit $? (${SECONDS}s)"; grep -hE "^deepseek" "$out/torch-$1.log"; mark "torch $1 end"; }
ours a 128; torch a; torch b; ours b 128
ours c 1,16,128
echo "== done in ${SECONDS}s"
