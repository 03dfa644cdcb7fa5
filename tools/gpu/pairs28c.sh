#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-eighth session, issue 9). pairs28b.sh found the paired build
# correct but about twice as slow per clock everywhere (Mixtral-8x7B T = 8192 gate_up 8624 against 5898 us). Why: how many
# pairs the device holds, whether the paired build spills, and the paired work without the sharing
# (MOE_GROUPED_GEMM_WGMMA_CLUSTER_SHARE=0), on a compute-bound call (Mixtral-8x7B T = 8192) and a memory-bound one
# (DeepSeek-V3 T = 1024), random weights. Logs in $OUT/pairs28c.tgz.
set -uo pipefail
out=/tmp/moe-pairs28c; mkdir -p "$out"
trap 'tar czf "$OUT/pairs28c.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
timeout 120 $T -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaClusterTests -showLiveOutput > "$out/cluster-tests.log" 2>&1
echo "== cluster-tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 12 "$out/cluster-tests.log" | head -40
grep -oE "[^ ]*: [0-9]+ pairs of blocks.*" "$out/cluster-tests.log" | head -2; grep -E "Total:" "$out/cluster-tests.log" | tail -1
row() { grep -E "^\| $1" "$out/$2.log" | sed -E 's/ +\|/ |/g' | cut -c1-230; }
sweep() { local name=$1; shift
  env "$@" MOE_SWEEP_CLOCKS=1 MOE_SWEEP_WEIGHTS=random timeout 120 $B sweep grouped_gemm --device cuda:0 > "$out/$name.log" 2>&1
  echo "== $name: exit $? (${SECONDS}s)"; }
for v in c1 c2 c2s0; do
  case $v in c1) e="MOE_GROUPED_GEMM_WGMMA_CLUSTER=1";; c2) e="MOE_GROUPED_GEMM_WGMMA_CLUSTER=2";;
             c2s0) e="MOE_GROUPED_GEMM_WGMMA_CLUSTER=2 MOE_GROUPED_GEMM_WGMMA_CLUSTER_SHARE=0";; esac
  sweep mix-$v $e MOE_SWEEP_MODELS=mixtral MOE_SWEEP_TOKENS=8192; row mixtral mix-$v
  sweep ds-$v $e MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=1024; row deepseek ds-$v
done
echo "== done in ${SECONDS}s"
