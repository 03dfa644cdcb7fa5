#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: the sixteenth session's closing call (issues 5 and 9).
#   1. Tests: the fused decode kernel against its CPU twin at split shapes (new), its host side, the layer's fused path, TP
#      with the fused kernel, the TP bench.
#   2. A/B, alternating, two runs each, 4 layers cycled, T = 1: gate_up's raised split (MOE_DECODE_GATE_UP_SPLIT=auto, the
#      default) against the chain's, on a TP rank's slice of Qwen3 alone and in the TP layer on two GPUs; the whole Qwen3
#      layer on one GPU once (its split stays 1).
#   3. The whole suite on the two GPUs with the time left (tools/gpu/check-suite.sh).
# Logs in $OUT/x2-16d.tgz and $OUT/suite.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-x2-16d; mkdir -p "$out"
trap 'tar czf "$OUT/x2-16d.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
SECONDS=0
timeout 150 $T -class MoeRuntime.Tests.Kernels.MoeDecodeTwinTests -class MoeRuntime.Tests.Kernels.MoeDecodeTests \
  -class MoeRuntime.Tests.Runtime.MoeLayerFusedDecodeTests -class MoeRuntime.Tests.Runtime.TensorParallelFusedDecodeTests \
  -class MoeRuntime.Tests.Cli.TpLayerBenchTests -longRunning 30 -xml "$out/tests.xml" > "$out/tests.log" 2>&1
echo "== tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 12 "$out/tests.log" | head -60; grep -E "Total:" "$out/tests.log"
for v in auto chain auto.2 chain.2; do
  key=${v%.*}
  MOE_DECODE_GATE_UP_SPLIT=$key MOE_SWEEP_SLICE=2 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/slice-$v.log" 2>&1
  echo "== slice $v: exit $? (${SECONDS}s) $(grep -E "^\| qwen3" "$out/slice-$v.log" | cut -c1-110)"
done
for v in auto chain auto.2 chain.2; do
  key=${v%.*}
  MOE_DECODE_GATE_UP_SPLIT=$key timeout 60 $M bench layer --parallel tp --devices cuda:0,cuda:1 --preset qwen3-30b-a3b --tokens 1 --layers 4 --samples 40 > "$out/tp-$v.log" 2>&1
  echo "== TP $v: exit $? (${SECONDS}s) $(grep -E "^qwen3" "$out/tp-$v.log")"
done
MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/one.log" 2>&1
echo "== one GPU: exit $? (${SECONDS}s) $(grep -E "^\| qwen3" "$out/one.log" | cut -c1-110)"
WG_DEBUG_S=40 WG_S=90 SUITE_S=$((560 - SECONDS - 140)) OUT="$OUT" bash tools/gpu/check-suite.sh 2>&1 | tail -40
echo "== done (${SECONDS}s)"
