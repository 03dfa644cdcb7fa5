#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twentieth session, closing call): the dynamic schedule claiming its next
# item at a tile's last K step, against the static order (isolated sweep twice, the layer); the closing layer table with
# PyTorch's composite in the same call. Logs in $OUT/sched20c.tgz.
set -uo pipefail
out=/tmp/moe-sched20c; mkdir -p "$out/torch"
trap 'tar czf "$OUT/sched20c.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
timeout 110 $T -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests > "$out/wgmma.log" 2>&1
echo "== wgmma tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/wgmma.log" | head -40; grep -E "Total:" "$out/wgmma.log" | tail -1
grep -q "Failed: 0," "$out/wgmma.log" || { echo "wgmma tests did not pass: no benchmarks"; exit 1; }
sweep() { MOE_GROUPED_GEMM_WGMMA_SCHEDULE=$1 MOE_SWEEP_MODELS=$2 MOE_SWEEP_TOKENS=$3 \
            timeout 60 $B sweep grouped_gemm --device cuda:0 --json "$out/sweep-$1-$2-$4.json" > "$out/sweep-$1-$2-$4.log" 2>&1
          echo "== sweep $2 T=$3, schedule $1 ($4): exit $? (${SECONDS}s)"
          grep -E "^\| [a-z].*(gate_up |down)" "$out/sweep-$1-$2-$4.log" | grep -v "read floor" | cut -c1-150; }
for r in 1 2; do for s in dynamic static; do sweep $s mixtral,deepseek 1024,8192 $r; done; done
sweep dynamic qwen3 1024,8192 1; sweep static qwen3 1024,8192 1
lay() { MOE_GROUPED_GEMM_WGMMA_SCHEDULE=$1 timeout $2 $M bench layer "${@:4}" > "$out/$3-$1.log" 2>&1
        echo "== $3 schedule $1: exit $? (${SECONDS}s)"; grep -hE "^(preset|deepseek|mixtral|qwen3)" "$out/$3-$1.log"; }
for r in 1 2; do lay dynamic 40 ds8k-$r --preset deepseek-v3 --tokens 8192; lay static 40 ds8k-$r --preset deepseek-v3 --tokens 8192; done
lay dynamic 90 ds-phases-4 --preset deepseek-v3 --tokens 128,1024 --layers 4 --phases
lay static 60 ds-4 --preset deepseek-v3 --tokens 128,1024 --layers 4
lay dynamic 40 mixtral --preset mixtral-8x7b --tokens 128,1024 --layers 4
lay static 40 mixtral --preset mixtral-8x7b --tokens 128,1024 --layers 4
lay dynamic 40 qwen3 --preset qwen3-30b-a3b --tokens 128,1024 --layers 4
echo "== ours done (${SECONDS}s)"
(cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out/torch" MOE_SWEEP_TOKENS=128,1024 MOE_SWEEP_LAYERS=4 \
  timeout $((500 - SECONDS)) python3 moe_layer.py > "$out/torch.log" 2>&1)
echo "== torch: exit $? (${SECONDS}s)"; grep -vE "^#" "$out/torch.log" | cut -c1-200 | tail -12
echo "== done in ${SECONDS}s"
