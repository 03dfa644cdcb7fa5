#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-second session, second call). The auto order (wgmma_order.cuh:
# bounded:1 where at most 1 in 16 m-tiles is an expert's only one, else dynamic; dynamic on a workspace beside the
# shared experts' stream) is the default now. The layers without shared experts (Mixtral-8x7B, Qwen3-30B-A3B) under
# dynamic and auto, alternating in one process (MOE_SWEEP_SCHEDULES), PyTorch's composite in the same call; the isolated
# calls on the DeepSeek-V3 T = 8192 layer's router counts (order22a's, tools/gpu/deepseek-v3-T8192-counts.txt), where
# auto must pick dynamic; then the wgmma, trace and grouped GEMM classes and the Runtime namespace on this build. Logs in
# $OUT/order22b.tgz.
set -uo pipefail
out=/tmp/moe-order22b; mkdir -p "$out"
trap 'tar czf "$OUT/order22b.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
run() { local name=$1 limit=$2; shift 2
        env "$@" timeout $limit $B sweep ${SWEEP:-moe_layer} --device cuda:0 > "$out/$name.log" 2>&1
        echo "== $name: exit $? (${SECONDS}s)"; grep -E "^\| [a-z].*\[" "$out/$name.log" | cut -c1-175; }
SWEEP=moe_layer run layer-mixtral 90 MOE_SWEEP_SCHEDULES=dynamic,auto MOE_SWEEP_MODELS=mixtral MOE_SWEEP_TOKENS=1024,8192
SWEEP=moe_layer run layer-qwen3 90 MOE_SWEEP_SCHEDULES=dynamic,auto MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1024,8192
(cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out/torch" MOE_SWEEP_TOKENS=1024,8192 timeout 90 python3 moe_layer.py > "$out/torch.log" 2>&1)
echo "== torch: exit $? (${SECONDS}s)"; grep -vE "^#" "$out/torch.log" | cut -c1-200 | tail -10
SWEEP=grouped_gemm run gemm-ds-counts 60 MOE_SWEEP_SCHEDULES=dynamic,auto,bounded:1 MOE_SWEEP_COUNTS=tools/gpu/deepseek-v3-T8192-counts.txt \
  MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=8192
SWEEP=grouped_gemm run gemm-mixtral-qwen3 60 MOE_SWEEP_SCHEDULES=dynamic,auto MOE_SWEEP_MODELS=mixtral,qwen3 MOE_SWEEP_TOKENS=1024,8192
timeout 260 $T -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTraceTests \
  -class MoeRuntime.Tests.Kernels.GroupedGemmTests > "$out/wgmma.log" 2>&1
echo "== wgmma, trace, grouped GEMM tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 14 "$out/wgmma.log" | head -60; grep -E "Total:" "$out/wgmma.log" | tail -1
timeout 200 $T -namespace MoeRuntime.Tests.Runtime > "$out/runtime.log" 2>&1
echo "== Runtime namespace: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 14 "$out/runtime.log" | head -60; grep -E "Total:" "$out/runtime.log" | tail -1
echo "== done in ${SECONDS}s"
