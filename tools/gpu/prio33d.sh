#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (thirty-third session). DeepSeek-V3's shared experts add 49 us at
# T = 16 and 72 us at T = 128 to the layer, though their 88 MB take 20 us at 4.4 TB/s. Their stream and the routed path's
# blocks wait for the same SMs; MOE_LAYER_SHARED_PRIORITY=high (new, A/B) gives the shared stream the device's greatest
# priority, so its blocks start first (graphs keep captured priorities: CudaGraph now instantiates with
# CUDA_GRAPH_INSTANTIATE_FLAG_USE_NODE_PRIORITY). DeepSeek-V3 at T = 1, 16, 128, 4 layers cycled, the same routing as
# PyTorch, one process a row, normal and high alternating, PyTorch once; then the Accelerators, Runtime and Cli namespaces, and the Kernels
# namespace in what time is left (every graph now instantiates with the flag). Logs in $OUT/prio33d.tgz.
# It ran on 99b90a1; high was no faster, and the priorities were reverted (c844efd).
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-prio33d; mkdir -p "$out/routing"
trap 'tar czf "$OUT/prio33d.tgz" -C "$out" --exclude=routing .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
SECONDS=0
ours() { [ $SECONDS -lt 250 ] || { echo "== ours $1 $2 skipped"; return; }
         MOE_LAYER_SHARED_PRIORITY=$1 MOE_BENCH_LAYER_ROUTING="$out/routing" timeout 90 $M bench layer --preset deepseek-v3 --tokens 1,16,128 --layers 4 > "$out/ours-$1-$2.log" 2>&1
         echo "== ours, shared priority $1, $2: exit $? (${SECONDS}s)"; grep -hE "^deepseek" "$out/ours-$1-$2.log"; }
torch() { [ $SECONDS -lt 260 ] || { echo "== torch skipped"; return; }
          (cd bench/reference && PYTHONUNBUFFERED=1 MOE_LAYER_ROUTING="$out/routing" MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=1,16,128 MOE_SWEEP_LAYERS=4 \
             timeout 90 python3 moe_layer.py > "$out/torch.log" 2>&1)
          echo "== torch: exit $? (${SECONDS}s)"; grep -E "^deepseek" "$out/torch.log" | cut -c1-200; }
ours normal a; ours high a; torch; ours normal b; ours high b
timeout 200 $T -namespace MoeRuntime.Tests.Accelerators -namespace MoeRuntime.Tests.Runtime -namespace MoeRuntime.Tests.Cli > "$out/tests.log" 2>&1
echo "== Accelerators + Runtime + Cli tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 10 "$out/tests.log" | head -30; grep -E "Total:" "$out/tests.log" | tail -1
grep -E "StreamPriorityTests.*(FAIL|SKIP)" "$out/tests.log" | head -4
timeout $((590 - SECONDS)) $T -namespace MoeRuntime.Tests.Kernels > "$out/kernels.log" 2>&1
echo "== Kernels tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 10 "$out/kernels.log" | head -30; grep -E "Total:" "$out/kernels.log" | tail -1
echo "== done in ${SECONDS}s"
