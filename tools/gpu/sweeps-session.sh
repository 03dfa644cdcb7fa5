#!/usr/bin/env bash
# GPU machine, one GPU (cuda:0), after tools/gpu/pack.sh: PyTorch's references and our sweeps in the same
# session, including A/B runs of the grouped GEMM (split-K off; the wgmma kernel forced; wgmma chosen by the
# heuristic). Everything lands in $OUT/sweeps.tgz; tables go to stdout.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-sweeps; mkdir -p "$out"
trap 'tar czf "$OUT/sweeps.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM   # a stopped run still packs what it has
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
for ref in ${REFS:-token_ops grouped_gemm moe_layer}; do
  PYTHONUNBUFFERED=1 OUT="$out" timeout 150 python3 "bench/reference/$ref.py" > "$out/ref-$ref.log" 2>&1; echo "ref $ref: exit $?"
done
sweep() { # name, label, env...
  local name=$1 label=$2; shift 2
  env "$@" timeout 200 $B sweep "$name" --device cuda:0 --json "$out/sweep-$label.json" > "$out/sweep-$label.log" 2>&1
  echo "sweep $label: exit $?"
}
sweep token_ops token_ops
sweep grouped_gemm grouped_gemm
sweep grouped_gemm grouped_gemm-nosplit MOE_GROUPED_GEMM_SPLITK=1
sweep grouped_gemm grouped_gemm-wgmma MOE_GROUPED_GEMM_VARIANT=wgmma
sweep moe_layer moe_layer
sweep moe_layer moe_layer-wgmma MOE_GROUPED_GEMM_WGMMA=1
sweep grouped_gemm_ep grouped_gemm_ep MOE_GROUPED_GEMM_WGMMA=1
grep -hE "T=(1|8192) " "$out"/sweep-grouped_gemm*.log | cut -c1-150 | head -60
