#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-eighth session, issue 9). pairs28c.sh: 66 pairs resident, no
# spill, yet Mixtral-8x7B T = 8192 gate_up took 6070 us unpaired, 7187 paired without sharing, 8757 paired with the
# multicast. Where does the time go? Each variant's rows traced (MOE_GROUPED_GEMM_WGMMA_TRACE=1: every item's start,
# loop end, epilogue end and SM, paired blocks each their half), random weights. Logs and CSVs in $OUT/pairs28d.tgz.
set -uo pipefail
out=/tmp/moe-pairs28d; mkdir -p "$out"
trap 'tar czf "$OUT/pairs28d.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
for v in c1 c2s0 c2; do
  case $v in c1) e="MOE_GROUPED_GEMM_WGMMA_CLUSTER=1";; c2) e="MOE_GROUPED_GEMM_WGMMA_CLUSTER=2";;
             c2s0) e="MOE_GROUPED_GEMM_WGMMA_CLUSTER=2 MOE_GROUPED_GEMM_WGMMA_CLUSTER_SHARE=0";; esac
  mkdir -p "$out/$v"
  env $e MOE_GROUPED_GEMM_WGMMA_TRACE=1 MOE_SWEEP_TRACE_DIR="$out/$v" MOE_SWEEP_WEIGHTS=random MOE_SWEEP_MODELS=mixtral MOE_SWEEP_TOKENS=8192 \
    timeout 120 $B sweep grouped_gemm --device cuda:0 > "$out/$v.log" 2>&1
  echo "== $v: exit $? (${SECONDS}s)"; grep -E "^\| mixtral|wgmma trace" "$out/$v.log" | sed -E 's/ +\|/ |/g' | cut -c1-200
done
echo "== done in ${SECONDS}s"
