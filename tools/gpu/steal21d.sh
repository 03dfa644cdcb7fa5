#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-first session). slots21c.sh: where the static order's items run
# matters (scrambled over the blocks, Mixtral-8x7B T = 1024 gate_up took 1.05 ms against 0.74, DeepSeek-V3 T = 8192
# gate_up 11.0 against 6.0), and the dynamic claims scatter items after the first wave. The steal order
# (MOE_GROUPED_GEMM_WGMMA_SCHEDULE=steal) keeps the static placement and lets early blocks take late blocks' last items.
# Here: the wgmma and trace classes (late odd blocks: stealing shown), then static / dynamic / steal on the isolated
# sweep (twice) and on whole layers. Logs in $OUT/steal21d.tgz.
set -uo pipefail
out=/tmp/moe-steal21d; mkdir -p "$out"
trap 'tar czf "$OUT/steal21d.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
timeout 160 $T -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTraceTests > "$out/wgmma.log" 2>&1
echo "== wgmma + trace tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 12 "$out/wgmma.log" | head -60; grep -E "Total:" "$out/wgmma.log" | tail -1
grep -q "Failed: 0," "$out/wgmma.log" || { echo "tests did not pass: no benchmarks"; exit 1; }
sweep() { MOE_GROUPED_GEMM_WGMMA_SCHEDULE=$1 MOE_SWEEP_MODELS=mixtral,deepseek,qwen3 MOE_SWEEP_TOKENS=1024,8192 \
            timeout 60 $B sweep grouped_gemm --device cuda:0 --json "$out/sweep-$1-$2.json" > "$out/sweep-$1-$2.log" 2>&1
          echo "== sweep, schedule $1 ($2): exit $? (${SECONDS}s)"
          grep -E "^\| [a-z].*(gate_up |down)" "$out/sweep-$1-$2.log" | grep -v "read floor" | cut -c1-100; }
for r in 1 2; do sweep static $r; sweep dynamic $r; sweep steal $r; done
lay() { MOE_GROUPED_GEMM_WGMMA_SCHEDULE=$1 timeout $2 $M bench layer "${@:4}" > "$out/$3-$1.log" 2>&1
        echo "== $3 schedule $1: exit $? (${SECONDS}s)"; grep -hE "^(deepseek|mixtral|qwen3)" "$out/$3-$1.log"; }
for s in steal dynamic static steal; do lay $s 45 ds8k --preset deepseek-v3 --tokens 8192; done
for s in steal dynamic static; do lay $s 60 mx --preset mixtral-8x7b --tokens 1024,8192; lay $s 40 qw --preset qwen3-30b-a3b --tokens 1024,8192; done
for s in steal dynamic; do [ $SECONDS -lt 420 ] && lay $s 90 ds-4 --preset deepseek-v3 --tokens 128,1024 --layers 4; done
echo "== done in ${SECONDS}s"
