#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-sixth session, issue 5). The layer on main (the decode GEMV's
# direct write since 400fc06) beside PyTorch's composite in the same call: `moe bench layer` for the three presets at
# T = 1, 16, 128, 1024, 8192 with 4 layers cycled, then bench/reference/moe_layer.py at the same counts. Logs in
# $OUT/final26c.tgz.
set -uo pipefail
out=/tmp/moe-final26c; mkdir -p "$out"
trap 'tar czf "$OUT/final26c.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
SECONDS=0
lay() { timeout $2 $M bench layer --preset $1 --tokens 1,16,128,1024,8192 --layers 4 > "$out/$1.log" 2>&1
        echo "== $1: exit $? (${SECONDS}s)"; grep -hE "^(preset|deepseek|mixtral|qwen3)" "$out/$1.log"; }
lay qwen3-30b-a3b 90
lay mixtral-8x7b 120
lay deepseek-v3 150
left=$((560 - SECONDS)); [ $left -gt 60 ] || { echo "== torch skipped (${SECONDS}s)"; exit 0; }
(cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out/torch" MOE_SWEEP_LAYERS=4 timeout $left python3 moe_layer.py > "$out/torch.log" 2>&1)
echo "== torch: exit $? (${SECONDS}s)"; grep -vE "^#" "$out/torch.log" | cut -c1-220 | tail -20
echo "== done in ${SECONDS}s"
