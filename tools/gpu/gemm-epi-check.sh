#!/usr/bin/env bash
# GPU machine, one GPU (cuda:0), after tools/gpu/pack.sh: the wgmma grouped GEMM's epilogue through shared memory
# (issue 9). Tests first (both epilogues against the reference, bit-equal to each other), then the prefill sweep:
#   A: MOE_GROUPED_GEMM_WGMMA_EPILOGUE=direct, DeepSeek-V3 T=8192 (the old epilogue, the 9.7 ms gate_up);
#   B: smem (the new default), every model at T=1024 and T=8192.
# Look at: "deepseek-v3 gate_up" (plain) and "gate_up+silu" at T=8192 in A against B; the other models' rows in B
# against docs/PERFORMANCE.md. Logs in $OUT/gemm-epi.tgz; about 4 minutes at most.
set -uo pipefail
out=/tmp/moe-gemm-epi; mkdir -p "$out"
trap 'tar czf "$OUT/gemm-epi.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
start=$SECONDS
timeout 240 $T -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests -class MoeRuntime.Tests.Kernels.GroupedGemmTests > "$out/tests.log" 2>&1
echo "== grouped GEMM tests (wgmma, both epilogues; mma.sync tiles): exit $? after $((SECONDS - start)) s"
grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -40; grep -E "Total:" "$out/tests.log"
sweep() { # label, seconds, env...
  local label=$1 limit=$2; shift 2
  local t0=$SECONDS
  env "$@" timeout "$limit" $B sweep grouped_gemm --device cuda:0 --json "$out/$label.json" > "$out/$label.log" 2>&1
  echo "== $label: exit $? after $((SECONDS - t0)) s"
  grep -E "T=[0-9]+ " "$out/$label.log" | sed -E 's/ +/ /g' | cut -c1-130
}
sweep A-direct-deepseek-8192 60 MOE_GROUPED_GEMM_WGMMA_EPILOGUE=direct MOE_SWEEP_TOKENS=8192 MOE_SWEEP_MODELS=deepseek
sweep B-smem-all-1024-8192 110 MOE_GROUPED_GEMM_WGMMA_EPILOGUE=smem MOE_SWEEP_TOKENS=1024,8192
echo "== the lines to compare (A direct, then B smem): DeepSeek-V3 T=8192"
grep -hE "deepseek.*T=8192 " "$out/A-direct-deepseek-8192.log" "$out/B-smem-all-1024-8192.log" | sed -E 's/ +/ /g' | cut -c1-130
echo "== total $((SECONDS - start)) s"
