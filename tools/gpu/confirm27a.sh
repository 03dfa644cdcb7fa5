#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh. Written in the twenty-sixth session for the next one; not yet run.
# The wgmma kernel's row minimum of 12 (02c9c0b) as main's default, not under the switch: the wgmma class (with
# TheHeuristicTakesCallsFromTwelveRows, which has not run on a GPU) and the Runtime namespace, then Mixtral-8x7B's layer
# at T = 1, 6, 8, 16, 128 (4 layers cycled) twice, PyTorch's composite at the same counts between. Logs in $OUT/confirm27a.tgz.
set -uo pipefail
out=/tmp/moe-confirm27a; mkdir -p "$out"
trap 'tar czf "$OUT/confirm27a.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
SECONDS=0
lay() { timeout 90 $M bench layer --preset mixtral-8x7b --tokens 1,6,8,16,128 --layers 4 > "$out/layer.$1.log" 2>&1
        echo "== layer $1: exit $? (${SECONDS}s)"; grep -hE "^mixtral" "$out/layer.$1.log"; }
lay 1
(cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out/torch" MOE_SWEEP_MODELS=mixtral MOE_SWEEP_TOKENS=1,6,8,16,128 MOE_SWEEP_LAYERS=4 \
  timeout 90 python3 moe_layer.py > "$out/torch.log" 2>&1)
echo "== torch: exit $? (${SECONDS}s)"; grep -vE "^#" "$out/torch.log" | cut -c1-200 | tail -6
lay 2
timeout 200 $T -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests > "$out/wgmma.log" 2>&1
echo "== wgmma class: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 10 "$out/wgmma.log" | head -30; grep -E "Total:" "$out/wgmma.log" | tail -1
left=$((560 - SECONDS)); [ $left -gt 40 ] || { echo "== Runtime namespace skipped (${SECONDS}s)"; exit 0; }
timeout $left $T -namespace MoeRuntime.Tests.Runtime > "$out/runtime.log" 2>&1
echo "== Runtime namespace: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 10 "$out/runtime.log" | head -30; grep -E "Total:" "$out/runtime.log" | tail -1
echo "== done in ${SECONDS}s"
