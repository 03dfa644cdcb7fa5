#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (thirty-third session), the final code: the waves rule puts DeepSeek-V3
# T = 16's expert GEMMs on the wgmma kernel (rule33b.sh). The three presets at T = 1, 16, 128, 4 layers cycled, both sides
# on the same routing (MOE_BENCH_LAYER_ROUTING / MOE_LAYER_ROUTING), one process a side, ours, torch, ours, torch, as
# route32c.sh ran them; then `moe demo`. Logs in $OUT/route33c.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-route33c; mkdir -p "$out/routing"
trap 'tar czf "$OUT/route33c.tgz" -C "$out" --exclude=routing .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
SECONDS=0
ours() { [ $SECONDS -lt 380 ] || { echo "== ours $1 skipped"; return; }
         for p in mixtral-8x7b qwen3-30b-a3b deepseek-v3; do
           MOE_BENCH_LAYER_ROUTING="$out/routing" timeout 120 $M bench layer --preset $p --tokens 1,16,128 --layers 4 > "$out/ours-$p-$1.log" 2> "$out/ours-$p-$1.err"
           echo "== ours $p $1: exit $? (${SECONDS}s)"; grep -hE "^(mixtral|qwen3|deepseek)" "$out/ours-$p-$1.log"
         done; }
torch() { [ $SECONDS -lt 420 ] || { echo "== torch $1 skipped"; return; }
          (cd bench/reference && PYTHONUNBUFFERED=1 MOE_LAYER_ROUTING="$out/routing" MOE_SWEEP_TOKENS=1,16,128 MOE_SWEEP_LAYERS=4 \
             timeout 150 python3 moe_layer.py > "$out/torch-$1.log" 2>&1)
          echo "== torch $1: exit $? (${SECONDS}s)"; grep -vE "^#" "$out/torch-$1.log" | cut -c1-220 | tail -12; }
ours a; torch a; ours b; torch b
[ $SECONDS -lt 500 ] && timeout 90 $M demo > "$out/demo.log" 2>&1; echo "== moe demo: exit $? (${SECONDS}s)"; tail -20 "$out/demo.log"
echo "== done in ${SECONDS}s"
