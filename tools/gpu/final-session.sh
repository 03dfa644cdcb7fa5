#!/usr/bin/env bash
# GPU machine with 2 GPUs, after tools/gpu/pack.sh: the end-of-session runs in three parts that each fit one call.
#   bash tools/gpu/final-session.sh suite   the whole suite with CUDA (the Hopper kernel's tests ran earlier in the
#                                           session: WG_S=0 skips them), then the AllReduce table with NCCL beside it
#   bash tools/gpu/final-session.sh sweeps  PyTorch's grouped GEMM and layer references and our sweeps, one GPU
#   bash tools/gpu/final-session.sh multi   token ops, the EP layer per phase, EPLB, the prefill order check
# Logs in $OUT/final-<part>.tgz; summaries on stdout.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
part=${1:?suite, sweeps or multi}
out=/tmp/moe-final-$part; mkdir -p "$out"
trap 'tar czf "$OUT/final-$part.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
step() { # seconds, label, command...
  local s=$1 label=$2; shift 2
  timeout "$s" "$@" > "$out/$label.log" 2>&1; echo "== $label: exit $?"
}
case $part in
suite)
  WG_DEBUG_S=${WG_DEBUG_S:-1} WG_S=${WG_S:-1} SUITE_S=${SUITE_S:-380} OUT="$out" bash tools/gpu/check-suite.sh 2>&1 | grep -vE "^== wgmma" | tail -60
  step 140 allreduce $M bench allreduce --devices cuda:0,cuda:1 --algo all --dtype bf16 --min 1K --max 256M --json "$out/allreduce.json" --svg "$out/allreduce.svg"
  grep -E "^#|^ +[0-9]" "$out/allreduce.log" | awk '/^#/ {print; next} {print $1, $4, $7, $NF}' | head -120
  ;;
sweeps)
  for ref in grouped_gemm moe_layer; do
    PYTHONUNBUFFERED=1 OUT="$out" timeout 130 python3 "bench/reference/$ref.py" > "$out/ref-$ref.log" 2>&1; echo "== ref $ref: exit $?"
  done
  step 170 sweep-grouped_gemm $B sweep grouped_gemm --device cuda:0 --json "$out/sweep-grouped_gemm.json"
  step 120 sweep-moe_layer $B sweep moe_layer --device cuda:0 --json "$out/sweep-moe_layer.json"
  grep -hE "T=(1|16|128|1024|8192) " "$out"/sweep-*.log | sed -E 's/ +/ /g' | cut -c1-140 | head -80
  ;;
multi)
  step 90 sweep-token_ops $B sweep token_ops --device cuda:0 --json "$out/sweep-token_ops.json"
  grep -E "^\| (routing|permute|combine|silu)" "$out/sweep-token_ops.log" | sed -E 's/ +/ /g' | cut -c1-120
  step 120 ep-deepseek $M bench layer --parallel ep --devices cuda:0,cuda:1 --preset deepseek-v3 --tokens 1,16,128,1024,4096 --json "$out/ep-deepseek.json"
  tail -7 "$out/ep-deepseek.log"
  step 70 ep-qwen3 $M bench layer --parallel ep --devices cuda:0,cuda:1 --preset qwen3-30b-a3b --tokens 1,16,128,1024,4096 --json "$out/ep-qwen3.json"
  tail -7 "$out/ep-qwen3.log"
  step 60 eplb $M bench eplb --devices cuda:0,cuda:1 --skew zipf:1.2 --preset moe-e64 --tokens 4096 --steps 32 --redundant 16 --dtype bf16 --json "$out/eplb.json"
  tail -7 "$out/eplb.log"
  step 90 eplb-drift $M bench eplb --devices cuda:0,cuda:1 --skew zipf:1.2 --drift --drift-period 16 --preset moe-e64 --tokens 4096 --steps 64 --redundant 16 --rebalance-every 4 --window 4 --dtype bf16 --json "$out/eplb-drift.json"
  tail -7 "$out/eplb-drift.log"
  MOE_SWEEP_TOKENS=8192 MOE_SWEEP_MODELS=deepseek MOE_SWEEP_FUSED_FIRST=1 step 60 prefill-fused-first $B sweep grouped_gemm --device cuda:0
  grep -E "T=8192" "$out/prefill-fused-first.log" | sed -E 's/ +/ /g' | cut -c1-130
  ;;
esac
