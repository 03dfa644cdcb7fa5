#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: the fifth session's closing runs, each under 10 minutes.
#   bash tools/gpu/final5.sh checks   tools/gpu/twoshot6-check.sh (two-shot over LL), tools/gpu/scale11-check.sh (scale model)
#   bash tools/gpu/final5.sh suite    the whole suite with CUDA (tools/gpu/check-suite.sh), then, time allowing, the layer
#                                     sweep at T = 1, 16, 128 (defaults, MOE_PDL=0, MOE_PERMUTE_PATH=two: the permute
#                                     without its one-kernel path, MOE_PDL_SKIP=grouped_gemm_wgmma.cu)
#                                     and PyTorch's layer beside it
# Logs in $OUT/final5-<part>.tgz (the helper scripts' own tarballs beside it); summaries on stdout.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
part=${1:?checks or suite}
out=/tmp/moe-final5-$part; mkdir -p "$out"
trap 'tar czf "$OUT/final5-$part.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
case $part in
checks)
  [ -f tools/gpu/twoshot6-check.sh ] && { timeout 270 bash tools/gpu/twoshot6-check.sh 2>&1 | tail -70; echo "== twoshot6 done (${SECONDS}s)"; }
  timeout $((570 - SECONDS)) bash tools/gpu/scale11-check.sh 2>&1 | tail -80; echo "== scale11 done (${SECONDS}s)"
  ;;
suite)
  WG_DEBUG_S=60 WG_S=110 SUITE_S=330 OUT="$out" bash tools/gpu/check-suite.sh 2>&1 | grep -vE "^== wgmma-debug" | tail -50
  echo "== suite done (${SECONDS}s)"
  layer() { # tag, env...
    local tag=$1; shift
    [ $((575 - SECONDS)) -gt 20 ] || { echo "== layer $tag: skipped (time)"; return; }
    env "$@" MOE_SWEEP_TOKENS=1,16,128 timeout $((575 - SECONDS)) $B sweep moe_layer --device cuda:0 --json "$out/layer-$tag.json" > "$out/layer-$tag.log" 2>&1
    echo "== layer $tag: exit $? (${SECONDS}s)"
    grep -E "^\| .* layer " "$out/layer-$tag.log" | awk -F'|' '{split($3,s," "); printf "  %-14s %-6s %9s us %6s | %s\n", $2, s[1], $4, $8, $9}' | sed -E 's/ layer +/ /'
  }
  # The GEMV with 4 segments of each W row in flight (a compile option): its tests, then the T = 1 rows beside the default (2).
  MOE_GROUPED_GEMM_GEMV_UNROLL=4 timeout 60 bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll \
    -class MoeRuntime.Tests.Kernels.GroupedGemmGemvTests > "$out/gemv-unroll4-tests.log" 2>&1 < /dev/null
  echo "== GEMV tests with MOE_GROUPED_GEMM_GEMV_UNROLL=4: exit $? (${SECONDS}s)"
  grep -E "\[FAIL\]" -A 6 "$out/gemv-unroll4-tests.log" | head -20; grep -E "Total:" "$out/gemv-unroll4-tests.log"
  for u in 2 4; do
    MOE_GROUPED_GEMM_GEMV_UNROLL=$u MOE_SWEEP_TOKENS=1 timeout 40 $B sweep grouped_gemm --device cuda:0 > "$out/gemm-unroll$u.log" 2>&1
    echo "== grouped_gemm T=1, GEMV unroll $u: exit $? (${SECONDS}s)"
    grep -E "T=1 " "$out/gemm-unroll$u.log" | awk -F'|' '{printf "  %-28s %9s us %6s\n", $2, $4, $8}'
  done
  layer default MOE_PDL=1
  layer pdl0 MOE_PDL=0
  layer permute2 MOE_PERMUTE_PATH=two
  layer skipwgmma MOE_PDL_SKIP=grouped_gemm_wgmma.cu
  if [ $((575 - SECONDS)) -gt 70 ]; then
    (cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out" MOE_SWEEP_TOKENS=1,16,128 timeout $((575 - SECONDS)) python3 moe_layer.py > "$out/ref-moe_layer.log" 2>&1)
    echo "== torch moe_layer: exit $? (${SECONDS}s)"; tail -12 "$out/ref-moe_layer.log"
  else echo "== torch moe_layer: skipped (time)"; fi
  ;;
esac
