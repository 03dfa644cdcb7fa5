#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-first session, closing kernel: the steal order removed; the
# default build's PTX is a3b507a's, which slots21c.sh tested). The wgmma, trace and plain grouped GEMM classes and the
# Runtime namespace on this build; then, time allowing, the layers beside PyTorch's composite in the same call (4 layers
# cycled, T = 128 and 1024). Logs in $OUT/close21g.tgz.
set -uo pipefail
out=/tmp/moe-close21g; mkdir -p "$out"
trap 'tar czf "$OUT/close21g.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
SECONDS=0
timeout 200 $T -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTraceTests \
  -class MoeRuntime.Tests.Kernels.GroupedGemmTests > "$out/wgmma.log" 2>&1
echo "== wgmma, trace, grouped GEMM tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 12 "$out/wgmma.log" | head -50; grep -E "Total:" "$out/wgmma.log" | tail -1
timeout 150 $T -namespace MoeRuntime.Tests.Runtime > "$out/runtime.log" 2>&1
echo "== Runtime namespace: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 12 "$out/runtime.log" | head -50; grep -E "Total:" "$out/runtime.log" | tail -1
lay() { [ $SECONDS -lt $1 ] || { echo "== skipped $2 past ${SECONDS}s"; return; }
        timeout 60 $M bench layer "${@:3}" > "$out/$2.log" 2>&1
        echo "== $2: exit $? (${SECONDS}s)"; grep -hE "^(preset|deepseek|mixtral|qwen3)" "$out/$2.log"; }
lay 225 qwen3 --preset qwen3-30b-a3b --tokens 128,1024 --layers 4
lay 235 mixtral --preset mixtral-8x7b --tokens 128,1024 --layers 4
lay 245 ds-4 --preset deepseek-v3 --tokens 128,1024 --layers 4
if [ $SECONDS -lt 280 ]; then
  (cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out/torch" MOE_SWEEP_TOKENS=128,1024 MOE_SWEEP_LAYERS=4 \
    timeout $((315 - SECONDS)) python3 moe_layer.py > "$out/torch.log" 2>&1)
  echo "== torch: exit $? (${SECONDS}s)"; grep -vE "^#" "$out/torch.log" | cut -c1-200 | tail -12
fi
echo "== done in ${SECONDS}s"
