#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (thirty-first session, last call). DeepSeek-V3 at T = 1, 16, 128, 4 layers
# cycled, ours (`moe bench layer`) and PyTorch's composite (moe_layer.py, whose floor now counts the mean of the experts each
# cycled layer's router hits, as ours does), one process a side, alternating ours, torch, ours, torch. Then the Runtime
# and Cli test namespaces. Logs in $OUT/final31e.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-final31e; mkdir -p "$out"
trap 'tar czf "$OUT/final31e.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
SECONDS=0
ours() { timeout 100 $M bench layer --preset deepseek-v3 --tokens 1,16,128 --layers 4 > "$out/ours-$1.log" 2> "$out/ours-$1.err"
         echo "== ours $1: exit $? (${SECONDS}s)"; grep -hE "^(preset|deepseek)" "$out/ours-$1.log"; }
torch() { (cd bench/reference && PYTHONUNBUFFERED=1 MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=1,16,128 MOE_SWEEP_LAYERS=4 timeout 120 python3 moe_layer.py > "$out/torch-$1.log" 2>&1)
          echo "== torch $1: exit $? (${SECONDS}s)"; grep -vE "^#" "$out/torch-$1.log" | cut -c1-200 | tail -5; }
ours a; torch a; ours b; torch b
left=$((420 - SECONDS)); [ $left -gt 60 ] || { echo "== tests skipped (${SECONDS}s)"; exit 0; }
timeout $left $T -namespace MoeRuntime.Tests.Runtime -namespace MoeRuntime.Tests.Cli > "$out/tests.log" 2>&1
echo "== Runtime + Cli tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 10 "$out/tests.log" | head -30; grep -E "Total:" "$out/tests.log" | tail -1
echo "== done in ${SECONDS}s"
