#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: the fourth session's closing runs, each under 10 minutes.
#   bash tools/gpu/final4.sh suite    the whole suite with CUDA (tools/gpu/check-suite.sh: wgmma tests apart, then the rest)
#   bash tools/gpu/final4.sh sweeps   routing (tools/gpu/route6-check.sh when present), then decode rows (T = 1, 16, 128) of
#                                     the grouped GEMM and the layer beside PyTorch's references, the dense calls
# Logs in $OUT/final4-<part>.tgz; summaries on stdout.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
part=${1:?suite or sweeps}
out=/tmp/moe-final4-$part; mkdir -p "$out"
trap 'tar czf "$OUT/final4-$part.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
step() { # seconds, label, command...
  local s=$1 label=$2; shift 2
  timeout "$s" "$@" > "$out/$label.log" 2>&1; echo "== $label: exit $? (${SECONDS}s)"
}
case $part in
suite)
  WG_DEBUG_S=60 WG_S=120 SUITE_S=360 OUT="$out" bash tools/gpu/check-suite.sh 2>&1 | grep -vE "^== wgmma-debug" | tail -60
  ;;
sweeps)
  [ -f tools/gpu/route6-check.sh ] && { bash tools/gpu/route6-check.sh 2>&1 | tail -30; echo "== route6 done (${SECONDS}s)"; }
  export MOE_SWEEP_TOKENS=1,16,128
  (cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out" timeout 70 python3 grouped_gemm.py > "$out/ref-grouped_gemm.log" 2>&1); echo "== ref grouped_gemm: exit $? (${SECONDS}s)"
  step 80 sweep-grouped_gemm $B sweep grouped_gemm --device cuda:0 --json "$out/sweep-grouped_gemm.json"
  (cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out" timeout 80 python3 moe_layer.py > "$out/ref-moe_layer.log" 2>&1); echo "== ref moe_layer: exit $? (${SECONDS}s)"
  step 120 sweep-moe_layer $B sweep moe_layer --device cuda:0 --json "$out/sweep-moe_layer.json"
  grep -hE "T=(1|16|128) " "$out"/sweep-*.log | sed -E 's/ +/ /g' | cut -c1-150 | head -40
  tail -12 "$out/ref-moe_layer.log"
  ;;
esac
