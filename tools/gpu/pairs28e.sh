#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-eighth session, issue 9). pairs28b.sh again after one change:
# the paired build's consumers release a stage with CTA-scoped arrives (mbarrier.arrive.shared::cluster) instead of
# cluster-scoped releases, under which pairs28d.sh traced every K step 1.7x as long. The cluster tests, one traced
# paired Mixtral-8x7B T = 8192 process, then Mixtral-8x7B T = 8192 on random weights unpaired / paired / torch
# alternating twice with each row's SM clock and power, then every preset at T = 1024 and 8192, paired, unpaired and
# torch. Logs in $OUT/pairs28e.tgz.
set -uo pipefail
out=/tmp/moe-pairs28e; mkdir -p "$out"
trap 'tar czf "$OUT/pairs28e.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
tests() { local name=$1; shift
  timeout 240 "$@" > "$out/$name.log" 2>&1; echo "== $name: exit $? (${SECONDS}s)"
  grep -E "\[FAIL\]" -A 12 "$out/$name.log" | head -60; grep -E "pairs of blocks" "$out/$name.log" | head -2; grep -E "Total:" "$out/$name.log" | tail -1; }
tests cluster-tests $T -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaClusterTests
[ -n "$(grep -E 'Failed: 0,' "$out/cluster-tests.log")" ] || { echo "== the paired build failed its tests: no timing"; exit 0; }
row() { grep -E "^\| $1" "$out/$2.log" | sed -E 's/ +\|/ |/g' | cut -c1-230; }
mkdir -p "$out/trace"
MOE_GROUPED_GEMM_WGMMA_CLUSTER=2 MOE_GROUPED_GEMM_WGMMA_TRACE=1 MOE_SWEEP_TRACE_DIR="$out/trace" MOE_SWEEP_WEIGHTS=random MOE_SWEEP_MODELS=mixtral \
  MOE_SWEEP_TOKENS=8192 timeout 120 $B sweep grouped_gemm --device cuda:0 > "$out/trace.log" 2>&1
echo "== trace: exit $? (${SECONDS}s)"; grep -E "wgmma trace" "$out/trace.log" | cut -c1-140
sweep() { local name=$1; shift
  env "$@" MOE_SWEEP_CLOCKS=1 MOE_SWEEP_WEIGHTS=random timeout 120 $B sweep grouped_gemm --device cuda:0 > "$out/$name.log" 2>&1
  echo "== $name: exit $? (${SECONDS}s)"; }
for round in 1 2; do
  for c in 1 2; do
    sweep mix-c$c.$round MOE_GROUPED_GEMM_WGMMA_CLUSTER=$c MOE_SWEEP_MODELS=mixtral MOE_SWEEP_TOKENS=8192; row mixtral mix-c$c.$round
  done
  (cd bench/reference && MOE_SWEEP_CLOCKS=1 MOE_SWEEP_WEIGHTS=random MOE_SWEEP_MODELS=mixtral MOE_SWEEP_TOKENS=8192 timeout 60 python3 grouped_gemm.py) \
    > "$out/mix-torch.$round.log" 2>&1; echo "== mix-torch.$round: exit $? (${SECONDS}s)"; row mixtral mix-torch.$round
done
for c in 2 1; do
  [ $SECONDS -lt 360 ] || { echo "== stopped at ${SECONDS}s"; break; }
  sweep all-c$c MOE_GROUPED_GEMM_WGMMA_CLUSTER=$c MOE_SWEEP_TOKENS=1024,8192; row "(qwen|deepseek|mixtral)" all-c$c
done
(cd bench/reference && MOE_SWEEP_CLOCKS=1 MOE_SWEEP_WEIGHTS=random MOE_SWEEP_TOKENS=1024,8192 timeout 90 python3 grouped_gemm.py) \
  > "$out/all-torch.log" 2>&1; echo "== all-torch: exit $? (${SECONDS}s)"; row "(qwen|deepseek|mixtral)" all-torch
echo "== done in ${SECONDS}s"
