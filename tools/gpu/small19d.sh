#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the wgmma kernel's small tiles with the consumers meeting at a small
# tile's end (nineteenth session). small19c.sh had them much slower where the kernel is compute-bound (DeepSeek-V3 T = 8192
# gate_up 9.7 ms against 6.0, Mixtral-8x7B T = 1024 933 us against 777): the idle warpgroup ran ahead. Here: the wgmma
# tests; the isolated sweep at T = 1024, 8192 in modes off, on, boxes; the layer off and on (DeepSeek-V3 T = 128, 1024 with
# 4 layers cycled, T = 8192; Mixtral-8x7B and Qwen3-30B-A3B T = 128, 1024 cycled). Logs in $OUT/small19d.tgz.
set -uo pipefail
out=/tmp/moe-small19d; mkdir -p "$out"
trap 'tar czf "$OUT/small19d.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,clocks.mem --format=csv,noheader
timeout 110 $T -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests > "$out/wgmma.log" 2>&1
echo "== wgmma tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/wgmma.log" | head -40; grep -E "Total:" "$out/wgmma.log" | tail -1
grep -q "Failed: 0," "$out/wgmma.log" || { echo "wgmma tests did not pass: no benchmarks"; exit 1; }
ggrow() { grep -E "^\| [a-z].*(gate_up|down)" "$1" | grep -v "read floor" | cut -c1-150; }
for v in off on boxes; do
  MOE_GROUPED_GEMM_WGMMA_SMALL_TILES=$v MOE_SWEEP_TOKENS=1024,8192 timeout 50 $B sweep grouped_gemm --device cuda:0 --json "$out/gg-$v.json" > "$out/gg-$v.log" 2>&1
  echo "== grouped GEMM T=1024,8192, small tiles $v: exit $? (${SECONDS}s)"; ggrow "$out/gg-$v.log"
done
lay() { MOE_GROUPED_GEMM_WGMMA_SMALL_TILES=$1 timeout $2 $M bench layer "${@:4}" > "$out/$3-$1.log" 2>&1
        echo "== $3 small tiles $1: exit $? (${SECONDS}s)"; grep -E "^(deepseek|mixtral|qwen3)" "$out/$3-$1.log"; }
for v in off on; do lay $v 90 ds-cycled --preset deepseek-v3 --tokens 128,1024 --layers 4; done
for v in off on; do lay $v 40 ds8k --preset deepseek-v3 --tokens 8192; done
for v in off on; do (( SECONDS < 400 )) && lay $v 30 mixtral --preset mixtral-8x7b --tokens 128,1024 --layers 4; done
for v in off on; do (( SECONDS < 420 )) && lay $v 30 qwen3 --preset qwen3-30b-a3b --tokens 128,1024 --layers 4; done
echo "== done in ${SECONDS}s"
