#!/usr/bin/env bash
# GPU machine, 2 x H200 (nvidia-h200-x2), after `bash tools/gpu/pack.sh`, under 4 minutes: the scale model's calibration
# and validation from one build (issue 10, docs/SCALING.md).
#   1. sweep grouped_gemm_ep at Qwen3-30B-A3B shapes, then (time allowing) DeepSeek-V3 shapes: the expert GEMMs as an EP
#      rank runs them (fused gate_up, down into F32, split-K workspace), one JSON each
#   2. moe bench layer --parallel ep, Qwen3 then (time allowing) DeepSeek-V3, T = 1 .. 4096: validation points
#   3. moe simulate --calibrate on the sweeps + the repository's token ops and all-to-all (--link-algo ours), then
#      --validate every EP layer JSON (new and the repository's -s2) with the new params and the committed s2 params
# JSON and logs in $OUT/scale10.tgz; the error tables on stdout. Look at: "== calibrate" (a "gemm H=2048 I=768" line means
# Qwen3 has its own fit), the "validate ep-qwen3.json with h200-ours-params-s3.json" table and the "== summary" lines.
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
left() { [ $((210 - SECONDS)) -gt "$1" ]; } # enough of the 210 s measuring budget left for a step of $1 s? (the rest: calibrate, validate)

MOE_SWEEP_MODELS=qwen3 step 60 gg-ep-qwen3 $B sweep grouped_gemm_ep --device cuda:0 --json "$out/gg-ep-qwen3.json"
grep -E "^\| qwen3" "$out/gg-ep-qwen3.log" | grep -E "m=(1|16|128|512) " | sed -E 's/ +/ /g' | cut -c1-120
step 70 ep-qwen3 $M bench layer --parallel ep --devices cuda:0,cuda:1 --preset qwen3-30b-a3b --tokens 1,16,128,1024,4096 --json "$out/ep-qwen3.json"
tail -7 "$out/ep-qwen3.log"
if left 60; then
  MOE_SWEEP_MODELS=deepseek step 60 gg-ep-deepseek $B sweep grouped_gemm_ep --device cuda:0 --json "$out/gg-ep-deepseek.json"
else echo "== gg-ep-deepseek: skipped (time)"; fi
if left 90; then
  step 90 ep-deepseek $M bench layer --parallel ep --devices cuda:0,cuda:1 --preset deepseek-v3 --tokens 1,16,128,1024,4096 --json "$out/ep-deepseek.json"
  tail -7 "$out/ep-deepseek.log"
else echo "== ep-deepseek: skipped (time)"; fi

# Calibration: this run's sweeps (the repository's s2 DeepSeek sweep when this run has none), s2 token ops, the all-to-all.
sweeps=()
for f in "$out/gg-ep-qwen3.json" "$out/gg-ep-deepseek.json"; do [ -s "$f" ] && sweeps+=("$f"); done
[ -s "$out/gg-ep-deepseek.json" ] || sweeps+=("$S/h200-grouped_gemm_ep-2026-11-30-s2.json")
$M simulate --calibrate "${sweeps[@]}" $S/h200-token_ops-2026-11-30-s2.json $S/h200x2-alltoall-2026-11-30.json --link-algo ours \
  --save "$out/h200-ours-params-s3.json" > "$out/calibrate.log" 2>&1; echo "== calibrate: exit $?"
grep -E "^(gemm|link|routing|movement)|^  gemm" "$out/calibrate.log"
validate() { # EP layer JSON, params file
  [ -s "$1" ] && [ -s "$2" ] || return 0
  echo "== validate $(basename "$1") with $(basename "$2")"
  $M simulate --validate "$1" --params "$2" > "$out/validate-$(basename "$1" .json)-$(basename "$2" .json).log" 2>&1
  grep -vE "^# (params|validate)" "$out/validate-$(basename "$1" .json)-$(basename "$2" .json).log"
}
validate $S/h200x2-ep-deepseek-2026-11-30-s2.json "$out/h200-ours-params-s3.json"
validate $S/h200x2-ep-qwen3-2026-11-30-s2.json "$out/h200-ours-params-s3.json"
validate "$out/ep-deepseek.json" $S/h200-ours-params-s2.json
validate "$out/ep-qwen3.json" $S/h200-ours-params-s2.json
validate "$out/ep-deepseek.json" "$out/h200-ours-params-s3.json"
validate "$out/ep-qwen3.json" "$out/h200-ours-params-s3.json"
echo "== summary (|error| mean, max; file, params)"
for f in "$out"/validate-*.log; do [ -s "$f" ] && echo "$(basename "$f" .log): $(grep -oE "mean [0-9.]+ %, max [0-9.]+ %" "$f")"; done
echo "== done in ${SECONDS}s"
