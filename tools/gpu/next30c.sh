#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (thirtieth session, issue 5). The layer table again, now that
# `moe bench layer` and moe_layer.py alternate their eager and graph samples (before, the graph samples all ran after the
# eager ones, under the power cap those had raised: DeepSeek-V3 T = 128's graph read 3.58 ms in the table, 3.24 alone).
# The three presets at T = 1, 16, 128, 1024, 8192 with 4 layers cycled, then bench/reference/moe_layer.py in the same call,
# then (if EXTRA_CLASSES is set) those test classes. Logs in $OUT/next30c.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-next30c; mkdir -p "$out"
trap 'tar czf "$OUT/next30c.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
SECONDS=0
if [ -n "${EXTRA_CLASSES:-}" ]; then
  args=(); for c in $EXTRA_CLASSES; do args+=(-class "$c"); done
  timeout 150 $T "${args[@]}" > "$out/extra-tests.log" 2>&1
  echo "== extra classes: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 14 "$out/extra-tests.log" | head -40; grep -E "Total:" "$out/extra-tests.log" | tail -1
fi
lay() { local start=$SECONDS
        timeout $2 $M bench layer --preset $1 --tokens 1,16,128,1024,8192 --layers 4 > "$out/$1.log" 2> "$out/$1.err"
        echo "== $1: exit $? ($((SECONDS - start))s)"; grep -hE "^(preset|deepseek|mixtral|qwen3)" "$out/$1.log"; }
lay qwen3-30b-a3b 100
lay mixtral-8x7b 120
lay deepseek-v3 150
left=$((560 - SECONDS)); [ $left -gt 60 ] || { echo "== torch skipped (${SECONDS}s)"; exit 0; }
(cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out/torch" MOE_SWEEP_LAYERS=4 timeout $left python3 moe_layer.py > "$out/torch.log" 2>&1)
echo "== torch: exit $? (${SECONDS}s)"; grep -vE "^#" "$out/torch.log" | cut -c1-220 | tail -20
echo "== done in ${SECONDS}s"
