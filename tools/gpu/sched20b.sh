#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twentieth session): the idle warpgroup only on an expert's only tile
# (the kernel's rule now; the host's 64-rows-an-expert rule is gone), under the dynamic and the static order, against X
# boxes alone; the layer; then the whole suite but the wgmma class (run first). Logs in $OUT/sched20b.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-sched20b; mkdir -p "$out"
trap 'tar czf "$OUT/sched20b.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
timeout 110 $T -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests -class MoeRuntime.Tests.Accelerators.CudaTensorMapTests > "$out/wgmma.log" 2>&1
echo "== wgmma tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/wgmma.log" | head -40; grep -E "Total:" "$out/wgmma.log" | tail -1
grep -q "Failed: 0," "$out/wgmma.log" || { echo "wgmma tests did not pass: no benchmarks"; exit 1; }
sweep() { MOE_GROUPED_GEMM_WGMMA_SCHEDULE=$1 MOE_GROUPED_GEMM_WGMMA_SMALL_TILES=$2 MOE_SWEEP_MODELS=$3 MOE_SWEEP_TOKENS=$4 \
            timeout 60 $B sweep grouped_gemm --device cuda:0 --json "$out/sweep-$1-$2-$3-$5.json" > "$out/sweep-$1-$2-$3-$5.log" 2>&1
          echo "== sweep $3 T=$4, schedule $1, small tiles $2 ($5): exit $? (${SECONDS}s)"
          grep -E "^\| [a-z].*(gate_up |down)" "$out/sweep-$1-$2-$3-$5.log" | grep -v "read floor" | cut -c1-150; }
sweep dynamic on mixtral,deepseek,qwen3 128,1024,8192 1
sweep static on mixtral,deepseek,qwen3 128,1024,8192 1
sweep dynamic boxes mixtral,deepseek 1024,8192 1
sweep static boxes mixtral,deepseek 1024,8192 1
sweep dynamic on mixtral,deepseek 1024,8192 2
sweep static on mixtral,deepseek 1024,8192 2
lay() { MOE_GROUPED_GEMM_WGMMA_SCHEDULE=$1 timeout $2 $M bench layer "${@:4}" > "$out/$3-$1.log" 2>&1
        echo "== $3 schedule $1: exit $? (${SECONDS}s)"; grep -hE "^(preset|deepseek|mixtral|qwen3)" "$out/$3-$1.log"; }
lay dynamic 90 ds-phases-4 --preset deepseek-v3 --tokens 128,1024 --layers 4 --phases
lay dynamic 40 ds8k --preset deepseek-v3 --tokens 8192
lay static 40 ds8k --preset deepseek-v3 --tokens 8192
lay dynamic 40 mixtral --preset mixtral-8x7b --tokens 128,1024 --layers 4
lay static 40 mixtral --preset mixtral-8x7b --tokens 128,1024 --layers 4
echo "== benchmarks done (${SECONDS}s)"
left=$(( 545 - SECONDS ))
timeout $left $T -class- MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests -ctrf "$out/ctrf.json" > "$out/suite.log" 2>&1
echo "== suite: exit $? (${SECONDS}s, limit ${left}s)"; grep -E "\[FAIL\]" -A 12 "$out/suite.log" | head -80; grep -E "Total:" "$out/suite.log" | tail -1
