#!/usr/bin/env bash
# GPU machine, one GPU (cuda:0), after tools/gpu/pack.sh: issue 5, the skinny split-K kernel (grouped_gemm_skinny.cu) for
# the layer's single-matrix calls (router, shared expert) at T = 2..128.
#   1. CUDA tests with the kernel on (default): GroupedGemmSkinnyTests (against the F64 reference, reruns bit-identical,
#      small workspace, graph), GroupedGemmTests, GroupedGemmSplitKTests, GroupedGemmFewTilesTests, MoeLayerSkinnyTests,
#      MoeLayerFewTilesTests, MoeLayerTests (shared-expert stream, graphs); then the two layer classes with MOE_GROUPED_GEMM_SKINNY=off.
#   2. `dense_gemm` sweep at T = 16, 128: every path (auto = skinny now; skinny-wide / skinny-narrow = all its row tiles
#      with 128 / 64 of K per stage (default: 128 up to 16 rows);
#      skinny-k1/2/4/8 = K shares of 64/128/256/512 per split),
#      then auto only with MOE_GROUPED_GEMM_SKINNY=off (the old default).
#   3. bench/reference/dense_gemm.py: torch F.linear at the same shapes, same GPU.
#   4. moe bench layer --preset deepseek-v3 --tokens 16,128 --phases: skinny on, then off.
# Prints compact tables. Logs in $OUT/skinny.tgz. About 4 minutes.
set -uo pipefail
out=/tmp/moe-skinny; mkdir -p "$out"
trap 'tar czf "$OUT/skinny.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1
summary() { # log
  grep -E "\[FAIL\]" -A 10 "$1" | head -40; grep -E "Total:" "$1"
}
timeout 120 $T -class MoeRuntime.Tests.Kernels.GroupedGemmSkinnyTests -class MoeRuntime.Tests.Kernels.GroupedGemmTests \
  -class MoeRuntime.Tests.Kernels.GroupedGemmSplitKTests -class MoeRuntime.Tests.Kernels.GroupedGemmFewTilesTests > "$out/tests-on.log" 2>&1
echo "== kernel tests, skinny on: exit $?"; summary "$out/tests-on.log"
timeout 90 $T -class MoeRuntime.Tests.Runtime.MoeLayerSkinnyTests -class MoeRuntime.Tests.Runtime.MoeLayerFewTilesTests \
  -class MoeRuntime.Tests.Runtime.MoeLayerTests > "$out/tests-layer-on.log" 2>&1
echo "== layer tests, skinny on: exit $?"; summary "$out/tests-layer-on.log"
MOE_GROUPED_GEMM_SKINNY=off timeout 60 $T -class MoeRuntime.Tests.Runtime.MoeLayerSkinnyTests -class MoeRuntime.Tests.Runtime.MoeLayerFewTilesTests > "$out/tests-off.log" 2>&1
echo "== layer tests, skinny off: exit $?"; summary "$out/tests-off.log"

table() { # log: name | shape | time | of floor | note
  grep -E "^\| [a-z]" "$1" | grep -v "^| name" | awk -F'|' '{gsub(/ +$/, "", $2); gsub(/^ +| +$/, "", $3); printf "%-32s %-20s %9s %8s  %s\n", $2, $3, $4, $8, $9}'
}
MOE_SWEEP_TOKENS=16,128 timeout 150 $B sweep dense_gemm --device cuda:0 --json "$out/dense-on.json" > "$out/dense-on.log" 2>&1
echo "== dense_gemm, skinny on (time us, of floor, path): exit $?"; table "$out/dense-on.log"
MOE_GROUPED_GEMM_SKINNY=off MOE_DENSE_GEMM_PATHS=auto MOE_SWEEP_TOKENS=16,128 timeout 60 $B sweep dense_gemm --device cuda:0 \
  --json "$out/dense-off.json" > "$out/dense-off.log" 2>&1
echo "== dense_gemm auto, skinny off: exit $?"; table "$out/dense-off.log"
(cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out" timeout 90 python3 dense_gemm.py > "$out/torch.log" 2>&1); echo "== torch F.linear: exit $?"
grep -E "T=(16|128) " "$out/torch.log"

for skinny in on off; do
  MOE_GROUPED_GEMM_SKINNY=$skinny timeout 60 $M bench layer --preset deepseek-v3 --tokens 16,128 --device cuda:0 --phases --samples 20 \
    --json "$out/layer-$skinny.json" > "$out/layer-$skinny.log" 2>&1
  echo "== moe bench layer deepseek-v3, skinny $skinny: exit $?"
  grep -vE "^moe bench layer: generating" "$out/layer-$skinny.log" | tail -8
done
