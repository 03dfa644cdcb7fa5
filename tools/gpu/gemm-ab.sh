#!/usr/bin/env bash
# GPU machine, one GPU (cuda:0), after tools/gpu/pack.sh: A/B runs of the grouped GEMM for issue 9.
#   decode (T=1, 16): split-K forced to 1..8 and the BK=32 decode tile, against the heuristic's choice;
#   prefill (DeepSeek-V3 and Qwen3 at T=8192): the wgmma work order's group size 4 / 8 / 16, each twice (run-to-run spread).
# Logs in $OUT/gemm-ab.tgz; one line per row on stdout.
set -uo pipefail
out=/tmp/moe-gemm-ab; mkdir -p "$out"
trap 'tar czf "$OUT/gemm-ab.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
sweep() { # label, env...
  local label=$1; shift
  env "$@" timeout ${SWEEP_TIMEOUT:-90} $B sweep grouped_gemm --device cuda:0 --json "$out/$label.json" > "$out/$label.log" 2>&1
  echo "== $label: exit $?"
  grep -E "T=[0-9]+ " "$out/$label.log" | sed -E 's/ +/ /g' | cut -c1-130
}
sweep decode-auto MOE_SWEEP_TOKENS=1,16
for s in 1 2 3 4 6 8; do sweep decode-split$s MOE_SWEEP_TOKENS=1,16 MOE_GROUPED_GEMM_SPLITK=$s; done
sweep decode-bk32 MOE_SWEEP_TOKENS=1,16 MOE_GROUPED_GEMM_VARIANT=decode
for g in 8 4 16 8; do sweep prefill-group$g-$RANDOM MOE_SWEEP_TOKENS=8192 MOE_SWEEP_MODELS=deepseek,qwen3 MOE_GROUPED_GEMM_WGMMA_GROUP_M=$g; done
