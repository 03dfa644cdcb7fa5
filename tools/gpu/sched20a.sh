#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twentieth session): the wgmma kernel's dynamic schedule (tile tickets in
# the workspace) against the static order, with the idle warpgroup on and with X boxes only. Hypothesis: the idle warpgroup
# made small tiles cheaper, the static order let the blocks drift apart, and W tiles stopped being shared in L2.
# Then the phase bench behind its device spin (DeepSeek-V3 T = 128's router phase). Logs in $OUT/sched20a.tgz.
set -uo pipefail
out=/tmp/moe-sched20a; mkdir -p "$out"
trap 'tar czf "$OUT/sched20a.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
timeout 110 $T -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests -class MoeRuntime.Tests.Cli.DeviceDelayTests \
  -class MoeRuntime.Tests.Runtime.MoeLayerPhaseTimerTests > "$out/tests.log" 2>&1
echo "== tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -40; grep -E "Total:" "$out/tests.log" | tail -1
grep -q "Failed: 0," "$out/tests.log" || { echo "tests did not pass: no benchmarks"; exit 1; }
sweep() { MOE_GROUPED_GEMM_WGMMA_SCHEDULE=$1 MOE_GROUPED_GEMM_WGMMA_SMALL_TILES=$2 MOE_SWEEP_MODELS=$3 MOE_SWEEP_TOKENS=$4 \
            timeout 60 $B sweep grouped_gemm --device cuda:0 --json "$out/sweep-$1-$2-$3.json" > "$out/sweep-$1-$2-$3.log" 2>&1
          echo "== sweep $3 T=$4, schedule $1, small tiles $2: exit $? (${SECONDS}s)"
          grep -E "^\| [a-z].*(gate_up|down)" "$out/sweep-$1-$2-$3.log" | grep -v "read floor" | cut -c1-150; }
for s in static dynamic; do for m in on boxes; do sweep $s $m mixtral,deepseek 128,1024,8192; done; done
for s in static dynamic; do sweep $s on qwen3 1024,8192; done
lay() { MOE_GROUPED_GEMM_WGMMA_SCHEDULE=$1 timeout $2 $M bench layer "${@:4}" > "$out/$3-$1.log" 2>&1
        echo "== $3 schedule $1: exit $? (${SECONDS}s)"; grep -hE "^(preset|deepseek|mixtral|qwen3)" "$out/$3-$1.log"; }
lay dynamic 90 ds-phases-4 --preset deepseek-v3 --tokens 128,1024 --layers 4 --phases
lay static 60 ds-phases-4 --preset deepseek-v3 --tokens 128,1024 --layers 4 --phases
lay dynamic 40 ds8k --preset deepseek-v3 --tokens 8192
lay static 40 ds8k --preset deepseek-v3 --tokens 8192
lay dynamic 40 mixtral --preset mixtral-8x7b --tokens 128,1024 --layers 4
lay static 40 mixtral --preset mixtral-8x7b --tokens 128,1024 --layers 4
echo "== done in ${SECONDS}s"
