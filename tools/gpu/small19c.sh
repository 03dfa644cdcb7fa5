#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the wgmma kernel's small tiles with the idle warpgroup's own loop
# (nineteenth session). small19b.sh had them slower where the kernel is compute-bound (Mixtral-8x7B T = 1024 gate_up 978 us
# against 757) with the wgmma issued under a branch of the K loop. Here: ptxas's log for the branch form
# (tools/gpu/old-wgmma-branch.cu, uncommitted) and the new one; the wgmma tests; the isolated sweep and the layer, off and
# on alternating (T = 128, 1024, 8192); then the whole suite in the time left. Logs in $OUT/small19c.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-small19c; mkdir -p "$out"
trap 'tar czf "$OUT/small19c.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,clocks.mem --format=csv,noheader
python3 tools/gpu/ptxas_log.py tools/gpu/old-wgmma-branch.cu -DGW_SMALL_TILES=3 -DGW_EPILOGUE_SMEM=1 \
  src/Kernels/GroupedGemm/grouped_gemm_wgmma.cu -DGW_SMALL_TILES=3 -DGW_EPILOGUE_SMEM=1 \
  src/Kernels/GroupedGemm/grouped_gemm_wgmma.cu -DGW_SMALL_TILES=0 -DGW_EPILOGUE_SMEM=1 > "$out/ptxas.log" 2>&1 &
timeout 150 $T -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests > "$out/wgmma.log" 2>&1
echo "== wgmma tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/wgmma.log" | head -40; grep -E "Total:" "$out/wgmma.log" | tail -1
wait; echo "== ptxas logs (${SECONDS}s)"; cut -c1-220 "$out/ptxas.log"
grep -q "Failed: 0," "$out/wgmma.log" || { echo "wgmma tests did not pass: no benchmarks"; exit 1; }
ggrow() { grep -E "^\| [a-z].*(gate_up|down)" "$1" | grep -v "read floor" | cut -c1-150; }
for r in 1 2; do
  for v in off on; do
    MOE_GROUPED_GEMM_WGMMA_SMALL_TILES=$v MOE_SWEEP_TOKENS=128,1024 timeout 60 $B sweep grouped_gemm --device cuda:0 --json "$out/gg-$v-$r.json" > "$out/gg-$v-$r.log" 2>&1
    echo "== grouped GEMM T=128,1024, small tiles $v, run $r: exit $? (${SECONDS}s)"; ggrow "$out/gg-$v-$r.log"
  done
done
for v in off on; do
  MOE_GROUPED_GEMM_WGMMA_SMALL_TILES=$v MOE_SWEEP_TOKENS=8192 timeout 60 $B sweep grouped_gemm --device cuda:0 --json "$out/gg8k-$v.json" > "$out/gg8k-$v.log" 2>&1
  echo "== grouped GEMM T=8192, small tiles $v: exit $? (${SECONDS}s)"; ggrow "$out/gg8k-$v.log"
done
for r in 1 2; do
  for p in deepseek-v3 mixtral-8x7b qwen3-30b-a3b; do
    for v in off on; do
      (( SECONDS > 330 )) && break 3
      MOE_GROUPED_GEMM_WGMMA_SMALL_TILES=$v timeout 60 $M bench layer --preset $p --tokens 128,1024 --layers 4 > "$out/$p-$v-$r.log" 2>&1
      echo "== $p small tiles $v, run $r: exit $? (${SECONDS}s)"; grep -E "^(deepseek|mixtral|qwen3)" "$out/$p-$v-$r.log"
    done
  done
done
for v in off on; do
  (( SECONDS > 360 )) && break
  MOE_GROUPED_GEMM_WGMMA_SMALL_TILES=$v timeout 40 $M bench layer --preset deepseek-v3 --tokens 8192 > "$out/ds8k-$v.log" 2>&1
  echo "== deepseek-v3 T=8192 small tiles $v: exit $? (${SECONDS}s)"; grep -E "^deepseek" "$out/ds8k-$v.log"
done
left=$((585 - SECONDS))
timeout $left $T -class- MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests -ctrf "$out/ctrf.json" > "$out/suite.log" 2>&1
echo "== suite: exit $? (${SECONDS}s, ${left}s given)"; grep -E "\[FAIL\]" -A 12 "$out/suite.log" | head -60; grep -E "Total:" "$out/suite.log" | tail -1
echo "== done in ${SECONDS}s"
