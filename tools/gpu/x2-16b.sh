#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: the sixteenth session's second call (issues 5 and 10). Defaults: TP ranks
# run the fused decode kernel at T = 1 (MOE_DECODE_FUSED_TP unset = 1).
#   1. Qwen3 TP at T = 1, 4 layers cycled: the kernel's knobs on a rank's slice (prefetch early / off, unroll 2) against
#      the default, alternating, two runs each.
#   2. One rank's slice alone on GPU 0 (`sweep moe_layer`, MOE_SWEEP_SLICE=2, 4 layers cycled): its time and phase trace.
#   3. The TP table, T = 1, 16, 128, 1024, 4 layers cycled, three presets, on two GPUs and on one (the same harness).
#   4. The EP layer (Qwen3, DeepSeek-V3) for the scale model's out-of-sample validation.
#   5. Tests on the two GPUs: the TP bench and TP with the fused kernel, rank runs.
# Stdout: rows (ms), traces, test totals and failures. Logs in $OUT/x2-16b.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-x2-16b; mkdir -p "$out"
trap 'tar czf "$OUT/x2-16b.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
SECONDS=0
declare -A envs=([base]="X=1" [early]="MOE_DECODE_PREFETCH=early" [nopf]="MOE_DECODE_PREFETCH=off" [unroll2]="MOE_DECODE_UNROLL=2")
for v in base early nopf unroll2 base.2 early.2 nopf.2 unroll2.2; do
  key=${v%.*}
  env ${envs[$key]} timeout 60 $M bench layer --parallel tp --devices cuda:0,cuda:1 --preset qwen3-30b-a3b --tokens 1 --layers 4 > "$out/knob-$v.log" 2>&1
  echo "== qwen3 TP $v (${envs[$key]}): exit $? (${SECONDS}s) $(grep -E "^qwen3" "$out/knob-$v.log")"
done
MOE_SWEEP_SLICE=2 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/slice.log" 2>&1
echo "== slice: exit $? (${SECONDS}s)"; grep -E "^\| qwen3" "$out/slice.log"
MOE_SWEEP_SLICE=2 MOE_DECODE_TRACE=1 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/slice-trace.log" 2>&1
echo "== slice trace: exit $? (${SECONDS}s)"; grep -A 12 "decode trace" "$out/slice-trace.log" | grep -v -- "--" | head -40
for p in qwen3-30b-a3b mixtral-8x7b deepseek-v3; do
  for d in cuda:0,cuda:1 cuda:0; do
    timeout 120 $M bench layer --parallel tp --devices $d --preset $p --tokens 1,16,128,1024 --layers 4 --json "$out/tp-$p-${d//[:,]/}.json" > "$out/tp-$p-${d//[:,]/}.log" 2>&1
    echo "== $p on $d: exit $? (${SECONDS}s)"; grep -E "^$p |rror" "$out/tp-$p-${d//[:,]/}.log" | head -5
  done
done
for p in qwen3-30b-a3b deepseek-v3; do
  timeout 120 $M bench layer --parallel ep --devices cuda:0,cuda:1 --preset $p --tokens 1,16,128,1024,4096 --json "$out/ep-$p.json" > "$out/ep-$p.log" 2>&1
  echo "== EP $p: exit $? (${SECONDS}s)"; grep -vE "^moe bench" "$out/ep-$p.log" | cut -c1-160 | head -8
done
timeout $((560 - SECONDS)) $T -class MoeRuntime.Tests.Runtime.TensorParallelFusedDecodeTests -class MoeRuntime.Tests.Cli.TpLayerBenchTests \
  -class MoeRuntime.Tests.Runtime.RankMoeTests -longRunning 30 -xml "$out/tests.xml" > "$out/tests.log" 2>&1
echo "== tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 10 "$out/tests.log" | head -50; grep -E "Total:" "$out/tests.log"
echo "== done (${SECONDS}s)"
