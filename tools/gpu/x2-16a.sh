#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: the sixteenth session's first call (issues 5 and 4).
#   1. The TP layer at T = 1, 4 layers of different weights cycled (`moe bench layer --parallel tp --layers 4`): one GPU
#      (one rank, the same harness), then two GPUs with the ranks' six-kernel chain and with the fused decode kernel
#      (MOE_DECODE_FUSED_TP=off / on), alternating, two runs each, for the three presets.
#   2. Tests on the two GPUs: TP with the fused kernel, the TP bench, the layer's TP/EP, the LL AllReduce (the twelfth
#      session's timeout-test fix) and the communicator.
#   3. The AllReduce table, every algorithm, NCCL in the same run.
# Stdout: rows (ms), test totals and failures. Logs in $OUT/x2-16a.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-x2-16a; mkdir -p "$out"
trap 'tar czf "$OUT/x2-16a.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
SECONDS=0
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
for p in qwen3-30b-a3b mixtral-8x7b deepseek-v3; do
  timeout 100 $M bench layer --parallel tp --devices cuda:0 --preset $p --tokens 1 --layers 4 --json "$out/one-$p.json" > "$out/one-$p.log" 2>&1
  echo "== $p one GPU: exit $? (${SECONDS}s)"; grep -E "^$p " "$out/one-$p.log"
  for v in chain fused chain.2 fused.2; do
    key=${v%.*}; tp=off; [ "$key" = fused ] && tp=on
    MOE_DECODE_FUSED_TP=$tp timeout 100 $M bench layer --parallel tp --devices cuda:0,cuda:1 --preset $p --tokens 1 --layers 4 \
      --json "$out/tp-$p-$v.json" > "$out/tp-$p-$v.log" 2>&1
    echo "== $p TP $v: exit $? (${SECONDS}s)"; grep -E "^$p |rror" "$out/tp-$p-$v.log" | head -3
  done
done
timeout $((470 - SECONDS)) $T -class MoeRuntime.Tests.Runtime.TensorParallelFusedDecodeTests -class MoeRuntime.Tests.Cli.TpLayerBenchTests \
  -class MoeRuntime.Tests.Runtime.MoeLayerTests -class MoeRuntime.Tests.Collectives.CommunicatorTests \
  -class MoeRuntime.Tests.Collectives.LowLatencyAllReduceTests -longRunning 30 -xml "$out/tests.xml" > "$out/tests.log" 2>&1
echo "== tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 10 "$out/tests.log" | head -50; grep -E "Total:" "$out/tests.log"
timeout $((560 - SECONDS)) $M bench allreduce --devices cuda:0,cuda:1 --algo all --dtype bf16 --min 1K --max 4M --factor 2 --json "$out/allreduce.json" > "$out/allreduce.log" 2>&1
echo "== allreduce: exit $? (${SECONDS}s)"; grep -E "^#|^ +[0-9]" "$out/allreduce.log" | grep -v "^# AllReduce on" | awk '{print $1, $4, $8}' | paste -sd' ' | sed 's/# /\n# /g'
echo "== done (${SECONDS}s)"
