#!/usr/bin/env bash
# GPU machine with 2 GPUs, after tools/gpu/pack.sh: the third session's runs of 2026-11-30 in two calls.
#   bash tools/gpu/session3.sh a   two-shot LL with and without MOE_LL_FENCE (5 runs of the LL class each), the scale
#                                  model's sweeps and validation (scale10-check.sh), routing/permute (route3-check.sh)
#   bash tools/gpu/session3.sh b   GEMV and grouped GEMM tests; the LL class 4 times with two-shot on (now the default,
#                                  fenced); the AllReduce table 1K-4M with NCCL; PyTorch's grouped GEMM reference and our sweep
#   bash tools/gpu/session3.sh c   PyTorch's layer reference and our layer sweep
#   bash tools/gpu/session3.sh d   route4 and layer-phases checks, the Qwen3 EP GEMM sweep (for the scale model's fit),
#                                  Mixtral T=16 against split-K counts, two-shot on LL against the schedule path, LL runs
# Logs in $OUT; summaries on stdout.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
case ${1:?a or b} in
a)
  mkdir -p "$OUT/ll"
  for fence in 0 1; do
    for i in 1 2 3 4 5; do
      MOE_LL_TWOSHOT=1 MOE_LL_FENCE=$fence timeout 45 $T -class MoeRuntime.Tests.Collectives.LowLatencyAllReduceTests > "$OUT/ll/fence$fence-$i.log" 2>&1
      echo "LL two-shot fence=$fence run $i: exit $? $(grep -oE 'Failed: [0-9]+' "$OUT/ll/fence$fence-$i.log")"
    done
  done
  bash tools/gpu/scale10-check.sh 2>&1 | tail -40
  bash tools/gpu/route3-check.sh 2>&1 | tail -60
  ;;
b)
  timeout 200 $T -class MoeRuntime.Tests.Kernels.GroupedGemmGemvTests -class MoeRuntime.Tests.Kernels.GroupedGemmTests > "$OUT/gemv-tests.log" 2>&1
  echo "== GEMV + grouped GEMM tests: exit $?"; grep -E "\[FAIL\]" -A 6 "$OUT/gemv-tests.log" | head -30; grep -E "Total:" "$OUT/gemv-tests.log"
  mkdir -p "$OUT/ll"
  for i in 1 2 3 4; do
    timeout 45 $T -class MoeRuntime.Tests.Collectives.LowLatencyAllReduceTests > "$OUT/ll/default-$i.log" 2>&1
    echo "LL class (two-shot on by default) run $i: exit $? $(grep -oE 'Failed: [0-9]+, Skipped: [0-9]+' "$OUT/ll/default-$i.log")"
  done
  timeout 90 bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll bench allreduce --devices cuda:0,cuda:1 --algo all --dtype bf16 \
    --min 1K --max 4M --timing graph --json "$OUT/allreduce.json" > "$OUT/allreduce.log" 2>&1; echo "== allreduce bench: exit $?"
  grep -E "^#|^ +[0-9]" "$OUT/allreduce.log" | awk '/^#/ {print; next} {print $1, $4, $7, $NF}' | head -80
  PYTHONUNBUFFERED=1 timeout 130 python3 bench/reference/grouped_gemm.py > "$OUT/ref-grouped_gemm.log" 2>&1; echo "== ref grouped_gemm: exit $?"
  timeout 170 bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll sweep grouped_gemm --device cuda:0 \
    --json "$OUT/sweep-grouped_gemm.json" > "$OUT/sweep-grouped_gemm.log" 2>&1; echo "== sweep grouped_gemm: exit $?"
  grep -hE "T=(1|16|128|1024|8192) " "$OUT/sweep-grouped_gemm.log" | sed -E 's/ +/ /g' | cut -c1-140 | head -50
  ;;
c)
  PYTHONUNBUFFERED=1 timeout 130 python3 bench/reference/moe_layer.py > "$OUT/ref-moe_layer.log" 2>&1; echo "== ref moe_layer: exit $?"
  timeout 120 bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll sweep moe_layer --device cuda:0 \
    --json "$OUT/sweep-moe_layer.json" > "$OUT/sweep-moe_layer.log" 2>&1; echo "== sweep moe_layer: exit $?"
  grep -hE "T=(1|16|128|1024|8192) " "$OUT/sweep-moe_layer.log" | sed -E 's/ +/ /g' | cut -c1-140
  ;;
d)
  B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
  M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
  echo "== layer-phases"; bash tools/gpu/layer-phases-check.sh 2>&1 | tail -45
  echo "== route4"; bash tools/gpu/route4-check.sh 2>&1 | tail -40
  MOE_SWEEP_MODELS=qwen3 timeout 150 $B sweep grouped_gemm_ep --device cuda:0 --json "$OUT/gg-ep-qwen3.json" > "$OUT/gg-ep-qwen3.log" 2>&1
  echo "== gg-ep qwen3: exit $? ($(grep -c '^| qwen3' "$OUT/gg-ep-qwen3.log") rows)"
  for split in auto 1 2 4 8; do
    env $([ $split != auto ] && echo MOE_GROUPED_GEMM_SPLITK=$split) MOE_SWEEP_TOKENS=16 MOE_SWEEP_MODELS=mixtral timeout 40 $B sweep grouped_gemm --device cuda:0 \
      > "$OUT/mixtral16-split$split.log" 2>&1; echo "== Mixtral T=16 split-K $split: exit $?"
    grep -E "T=16 " "$OUT/mixtral16-split$split.log" | sed -E 's/ +/ /g' | cut -c1-130
  done
  for tw in 0 1; do
    MOE_LL_TWOSHOT=$tw timeout 40 $M bench allreduce --devices cuda:0,cuda:1 --algo twoshot --dtype bf16 --min 1K --max 2M --timing graph \
      > "$OUT/twoshot-ll$tw.log" 2>&1; echo "== two-shot, MOE_LL_TWOSHOT=$tw: exit $?"
    grep -E "^ +[0-9]" "$OUT/twoshot-ll$tw.log" | awk '{print $1, $4, $NF}' | head -14
  done
  for i in 1 2 3; do
    timeout 45 $T -class MoeRuntime.Tests.Collectives.LowLatencyAllReduceTests > "$OUT/ll-$i.log" 2>&1
    echo "LL class run $i: exit $? $(grep -oE 'Failed: [0-9]+, Skipped: [0-9]+' "$OUT/ll-$i.log")"
  done
  ;;
esac
