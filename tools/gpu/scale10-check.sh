#!/usr/bin/env bash
# GPU machine, 2 x H200 (nvidia-h200-x2), after `bash tools/gpu/pack.sh`, under 4 minutes: the scale model's calibration
# and validation from one build (issue 10, docs/SCALING.md).
#   1. sweep grouped_gemm_ep at Qwen3-30B-A3B shapes, then (time allowing) DeepSeek-V3 shapes: the expert GEMMs as an EP
#      rank runs them (fused gate_up, down into F32, split-K workspace), one JSON each
#   2. moe bench layer --parallel ep, Qwen3 then (time allowing) DeepSeek-V3, T = 1 .. 4096: validation points
#   3. moe simulate --calibrate on the sweeps + the repository's token ops and all-to-all (--link-algo ours), then
#      --validate every EP layer JSON (new and the repository's -s2) with the new params and the committed s2 params
# JSON and logs in $OUT/scale10.tgz; the error tables on stdout.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-scale10; mkdir -p "$out"
trap 'tar czf "$OUT/scale10.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
S=docs/scaling
step() { # seconds, label, command...
  local s=$1 label=$2; shift 2
  timeout "$s" "$@" > "$out/$label.log" 2>&1; echo "== $label: exit $? (${SECONDS}s so far)"
}
left() { [ $((200 - SECONDS)) -gt "$1" ]; } # enough of the 200 s measuring budget left for a step of $1 s?

MOE_SWEEP_MODELS=qwen3 step 60 gg-ep-qwen3 $B sweep grouped_gemm_ep --device cuda:0 --json "$out/gg-ep-qwen3.json"
grep -E "^\| qwen3" "$out/gg-ep-qwen3.log" | grep -E "m=(1|16|64|256|512) " | sed -E 's/ +/ /g' | cut -c1-130
step 50 ep-qwen3 $M bench layer --parallel ep --devices cuda:0,cuda:1 --preset qwen3-30b-a3b --tokens 1,16,128,1024,4096 --json "$out/ep-qwen3.json"
tail -7 "$out/ep-qwen3.log"
if left 60; then
  MOE_SWEEP_MODELS=deepseek step 60 gg-ep-deepseek $B sweep grouped_gemm_ep --device cuda:0 --json "$out/gg-ep-deepseek.json"
else echo "== gg-ep-deepseek: skipped (time)"; fi
if left 50; then
  step 50 ep-deepseek $M bench layer --parallel ep --devices cuda:0,cuda:1 --preset deepseek-v3 --tokens 1,16,128,1024,4096 --json "$out/ep-deepseek.json"
  tail -7 "$out/ep-deepseek.log"
else echo "== ep-deepseek: skipped (time)"; fi

# Calibration: this run's sweeps (the repository's s2 DeepSeek sweep when this run has none), s2 token ops, the all-to-all.
sweeps=()
for f in "$out/gg-ep-qwen3.json" "$out/gg-ep-deepseek.json"; do [ -s "$f" ] && sweeps+=("$f"); done
[ -s "$out/gg-ep-deepseek.json" ] || sweeps+=("$S/h200-grouped_gemm_ep-2026-11-30-s2.json")
$M simulate --calibrate "${sweeps[@]}" $S/h200-token_ops-2026-11-30-s2.json $S/h200x2-alltoall-2026-11-30.json --link-algo ours \
  --save "$out/h200-ours-params-s3.json" 2>&1 | tee "$out/calibrate.log"
for ep in "$out/ep-qwen3.json" "$out/ep-deepseek.json" $S/h200x2-ep-qwen3-2026-11-30-s2.json $S/h200x2-ep-deepseek-2026-11-30-s2.json; do
  [ -s "$ep" ] || continue
  for p in "$out/h200-ours-params-s3.json" $S/h200-ours-params-s2.json; do
    [ -s "$p" ] || continue
    echo "== validate $(basename "$ep") with $(basename "$p")"
    $M simulate --validate "$ep" --params "$p" 2>&1 | tee -a "$out/validate.log" | grep -vE "^# params"
  done
done
echo "== done in ${SECONDS}s"
