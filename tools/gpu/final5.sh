#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: the fifth session's closing runs, each under 10 minutes.
#   bash tools/gpu/final5.sh suite    the whole suite with CUDA (tools/gpu/check-suite.sh), then the layer sweep at
#                                     T = 1, 16, 128 (defaults; MOE_PDL=0; MOE_PERMUTE_PATH=two: the permute without its
#                                     one-kernel path) and PyTorch's layer beside it
#   bash tools/gpu/final5.sh checks   tools/gpu/twoshot6-check.sh (two-shot over LL), tools/gpu/scale11-check.sh (scale model)
#   bash tools/gpu/final5.sh final    routing classes, LL/AllReduce classes and bench (new LL defaults), our layer and
#                                     PyTorch's, the GEMV unroll A/B
# Logs in $OUT/final5-<part>.tgz (the helper scripts' own tarballs beside it); summaries on stdout.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
part=${1:?suite, checks or final}
out=/tmp/moe-final5-$part; mkdir -p "$out"
trap 'tar czf "$OUT/final5-$part.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
SECONDS=0
case $part in
suite)
  WG_DEBUG_S=60 WG_S=110 SUITE_S=330 OUT="$out" bash tools/gpu/check-suite.sh 2>&1 | grep -vE "^== wgmma-debug" | tail -45
  echo "== suite done (${SECONDS}s)"
  layer() { # tag, env...
    local tag=$1; shift
    [ $((585 - SECONDS)) -gt 25 ] || { echo "== layer $tag: skipped (time)"; return; }
    env "$@" MOE_SWEEP_TOKENS=1,16,128 timeout $((585 - SECONDS)) $B sweep moe_layer --device cuda:0 --json "$out/layer-$tag.json" > "$out/layer-$tag.log" 2>&1
    echo "== layer $tag: exit $? (${SECONDS}s)"
    grep -E "^\| .* layer " "$out/layer-$tag.log" | awk -F'|' '{split($3,s," "); printf "  %-14s %-6s %9s us %6s | %s\n", $2, s[1], $4, $8, $9}' | sed -E 's/ layer +/ /'
  }
  layer default MOE_PDL=1
  layer pdl0 MOE_PDL=0
  layer permute2 MOE_PERMUTE_PATH=two
  if [ $((585 - SECONDS)) -gt 60 ]; then
    (cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out" MOE_SWEEP_TOKENS=1,16,128 timeout $((585 - SECONDS)) python3 moe_layer.py > "$out/ref-moe_layer.log" 2>&1)
    echo "== torch moe_layer: exit $? (${SECONDS}s)"; tail -12 "$out/ref-moe_layer.log"
  else echo "== torch moe_layer: skipped (time)"; fi
  ;;
checks)
  timeout 250 bash tools/gpu/twoshot6-check.sh 2>&1 | tail -75; echo "== twoshot6 done (${SECONDS}s)"
  timeout $((575 - SECONDS)) bash tools/gpu/scale11-check.sh 2>&1 | tail -70; echo "== scale11 done (${SECONDS}s)"
  ;;
final) # 2 GPUs: the routing classes (their path switches now in one collection), the LL and AllReduce classes with the
       # new LL defaults (lazy fence, one unit a thread, two-shot on LL up to 1 MB) and the AllReduce bench beside NCCL, our
       # layer and PyTorch's in the same run, then the GEMV with 4 W segments in flight (its tests, T=1 rows beside 2)
  timeout 120 $T -class MoeRuntime.Tests.Kernels.TopKRoutingTests -class MoeRuntime.Tests.Kernels.TopKRoutingSigmoidBitsTests > "$out/routing-tests.log" 2>&1
  echo "== routing tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 6 "$out/routing-tests.log" | head -20; grep -E "Total:" "$out/routing-tests.log"
  timeout 120 $T -class MoeRuntime.Tests.Collectives.LowLatencyAllReduceTests -class MoeRuntime.Tests.Collectives.LowLatencyVariantTests \
    -class MoeRuntime.Tests.Collectives.AllReduceTests > "$out/ll-tests.log" 2>&1
  echo "== LL and AllReduce tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 6 "$out/ll-tests.log" | head -20; grep -E "Total:" "$out/ll-tests.log"
  timeout 60 bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll bench allreduce --devices cuda:0,cuda:1 --algo twoshot,oneshot,nccl \
    --dtype bf16 --min 1K --max 4M --timing graph --csv "$out/allreduce.csv" > "$out/allreduce.log" 2>&1
  echo "== allreduce bench (bytes=us [picked]): exit $? (${SECONDS}s)"
  grep -E "^# [A-Za-z]|^ +[0-9]" "$out/allreduce.log" | awk '/^#/{printf "\n%s:", $2; next} {printf " %s=%s[%s]", $1, $4, $8} END{print ""}'
  MOE_SWEEP_TOKENS=1,16,128 timeout 60 $B sweep moe_layer --device cuda:0 --json "$out/layer-default.json" > "$out/layer-default.log" 2>&1
  echo "== layer: exit $? (${SECONDS}s)"
  grep -E "^\| .* layer " "$out/layer-default.log" | awk -F'|' '{split($3,s," "); printf "  %-14s %-6s %9s us %6s | %s\n", $2, s[1], $4, $8, $9}' | sed -E 's/ layer +/ /'
  (cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out" MOE_SWEEP_TOKENS=1,16,128 timeout 120 python3 moe_layer.py > "$out/ref-moe_layer.log" 2>&1)
  echo "== torch moe_layer: exit $? (${SECONDS}s)"; tail -12 "$out/ref-moe_layer.log"
  MOE_GROUPED_GEMM_GEMV_UNROLL=4 timeout 60 $T -class MoeRuntime.Tests.Kernels.GroupedGemmGemvTests > "$out/gemv-unroll4-tests.log" 2>&1
  echo "== GEMV tests with MOE_GROUPED_GEMM_GEMV_UNROLL=4: exit $? (${SECONDS}s)"
  grep -E "\[FAIL\]" -A 6 "$out/gemv-unroll4-tests.log" | head -20; grep -E "Total:" "$out/gemv-unroll4-tests.log"
  for u in 2 4 2 4; do
    log="$out/gemm-unroll$u-at$SECONDS.log"
    MOE_GROUPED_GEMM_GEMV_UNROLL=$u MOE_SWEEP_TOKENS=1 timeout 40 $B sweep grouped_gemm --device cuda:0 > "$log" 2>&1
    echo "== grouped_gemm T=1, GEMV unroll $u: exit $? (${SECONDS}s)"
    grep -E "T=1 " "$log" | awk -F'|' '{printf "  %-28s %9s us %6s\n", $2, $4, $8}'
  done
  ;;
esac
