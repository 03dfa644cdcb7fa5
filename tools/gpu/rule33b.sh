#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (thirty-third session). rule33a.sh: DeepSeek-V3 T = 16's expert GEMMs on
# the wgmma kernel made the layer 1.532 ms against 1.596 on the decode GEMV (PyTorch's graph 2.335). The waves rule
# (GroupedGemmGemv.LeavesManyWaves, MOE_GROUPED_GEMM_GEMV_EXPERTS_MAX_WAVES, default 8) now leaves such calls to it. Here:
# DeepSeek-V3 at T = 1, 8, 16, 32, 128, 4 layers cycled, the same routing as PyTorch, one process a row, alternating the
# new default with the rule off (=0, the old dispatch; T = 8, 16, 32 only, where they differ), PyTorch once; then the
# Runtime and Cli namespaces and the rule's test classes. Logs in $OUT/rule33b.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-rule33b; mkdir -p "$out/routing"
trap 'tar czf "$OUT/rule33b.tgz" -C "$out" --exclude=routing .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
SECONDS=0
ours() { [ $SECONDS -lt 330 ] || { echo "== ours $1 $2 skipped"; return; }
         env MOE_GROUPED_GEMM_GEMV_EXPERTS_MAX_WAVES=$1 MOE_BENCH_LAYER_ROUTING="$out/routing" timeout 100 $M bench layer --preset deepseek-v3 --tokens $3 --layers 4 > "$out/ours-$1-$2.log" 2>&1
         echo "== ours, max waves ${1:-default}, $2: exit $? (${SECONDS}s)"; grep -hE "^deepseek" "$out/ours-$1-$2.log"; }
torch() { [ $SECONDS -lt 340 ] || { echo "== torch skipped"; return; }
          (cd bench/reference && PYTHONUNBUFFERED=1 MOE_LAYER_ROUTING="$out/routing" MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=1,8,16,32,128 MOE_SWEEP_LAYERS=4 \
             timeout 100 python3 moe_layer.py > "$out/torch.log" 2>&1)
          echo "== torch: exit $? (${SECONDS}s)"; grep -E "^deepseek" "$out/torch.log" | cut -c1-200; }
ours "" a 1,8,16,32,128; ours 0 a 8,16,32; torch; ours "" b 1,8,16,32,128; ours 0 b 8,16,32
timeout $((580 - SECONDS)) $T -namespace MoeRuntime.Tests.Runtime -namespace MoeRuntime.Tests.Cli > "$out/tests.log" 2>&1
echo "== Runtime + Cli tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 10 "$out/tests.log" | head -30; grep -E "Total:" "$out/tests.log" | tail -1
timeout 60 $T -class MoeRuntime.Tests.Kernels.GroupedGemmGemvWavesTests -class MoeRuntime.Tests.Kernels.GroupedGemmGemvShortKTests > "$out/rule-tests.log" 2>&1
echo "== rule tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]|\[SKIP\]" -A 4 "$out/rule-tests.log" | head -20; grep -E "Total:" "$out/rule-tests.log" | tail -1
echo "== done in ${SECONDS}s"
