#!/usr/bin/env bash
# GPU machine, 2 x H200 (nvidia-h200-x2), after `bash tools/gpu/pack.sh`, under 3 minutes: the scale model's Qwen3 EP miss
# (issue 10; docs/SCALING.md "Qwen3's remaining miss, phase by phase"). The per-rank marks of the s6 runs put the miss in
# the route's and the experts' host enqueue (2-3x what the s4 host sweep prices op by op) and in the experts' device time
# (the Qwen3 GEMM fit, the token ops of an older build). The host_launch sweep now also times a rank's whole route and
# experts phase as the layer issues them ("host route phase", "host experts phase"; HostPhaseRows), which --calibrate fits
# into HostParams.RoutePhase / ExpertsPhase. Nothing is fitted to the EP runs.
#   1. sweep host_launch (cuda:0, with the phase rows), grouped_gemm_ep at Qwen3 shapes, token_ops (time allowing)
#   2. moe simulate --calibrate: the committed s3 DeepSeek GEMM sweep, the s5 all-to-alls and dense calls, plus this run's
#      sweeps (the committed s3/s4 ones where a sweep did not finish) -> $OUT/h200-ours-params-s6-gpu.json
#      and, to isolate the new host term, the committed sweeps with only this run's host_launch -> h200-ours-params-s6-host.json
#   3. --validate the s6-ranked and s5 EP runs with those params and with h200-ours-params-scale11-gpu.json:
#      mean / max |error| per file and the T=128 rows
# Logs and JSON in $OUT/qwenmodel.tgz; the params file also as $OUT/h200-ours-params-s6-gpu.json for the lead to commit.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-qwenmodel; mkdir -p "$out"
trap 'cp -f "$out"/h200-ours-params-s6-*.json "$OUT/" 2>/dev/null; tar czf "$OUT/qwenmodel.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
bash .gpu/run.sh true
SECONDS=0
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
S=docs/scaling
step() { # seconds, label, command...
  local s=$1 label=$2; shift 2
  timeout "$s" "$@" > "$out/$label.log" 2>&1; echo "== $label: exit $? (${SECONDS}s so far)"
}
left() { [ $((170 - SECONDS)) -gt "$1" ]; } # enough of the 170 s measuring budget left for a step of $1 s?

step 60 host_launch $B sweep host_launch --device cuda:0 --json "$out/host_launch.json"
grep -E "^\| *host" "$out/host_launch.log" | sed -E 's/ +/ /g' | cut -d'|' -f2-4
MOE_SWEEP_MODELS=qwen3 step 60 gg-ep-qwen3 $B sweep grouped_gemm_ep --device cuda:0 --json "$out/gg-ep-qwen3.json"
if left 65; then step 65 token_ops $B sweep token_ops --device cuda:0 --json "$out/token_ops.json"
else echo "== token_ops: skipped (time)"; fi

pick() { [ -s "$1" ] && echo "$1" || echo "$2"; } # this run's sweep, else the committed one
files=("$(pick "$out/gg-ep-qwen3.json" $S/h200-grouped_gemm_ep-qwen3-2026-11-30-s3.json)" $S/h200-grouped_gemm_ep-deepseek-2026-11-30-s3.json
  "$(pick "$out/token_ops.json" $S/h200-token_ops-2026-11-30-s3.json)" "$(pick "$out/host_launch.json" $S/h200-host_launch-2026-11-30-s4.json)"
  $S/h200-dense_gemm-2026-11-30-s5.json $S/h200x2-alltoall-bf16-2026-11-30-s5.json $S/h200x2-alltoall-f32-2026-11-30-s5.json)
echo "== calibrate from: ${files[*]}"
$M simulate --calibrate "${files[@]}" --link-algo ours --save "$out/h200-ours-params-s6-gpu.json" > "$out/calibrate.log" 2>&1
echo "== calibrate: exit $?"
grep -E "^(link|host|gemm|token)|^  dense" "$out/calibrate.log" | cut -c1-300
if [ -s "$out/host_launch.json" ]; then # the committed sweeps and this run's host sweep only: what the phase rows alone change
  $M simulate --calibrate $S/h200-grouped_gemm_ep-qwen3-2026-11-30-s3.json $S/h200-grouped_gemm_ep-deepseek-2026-11-30-s3.json \
    $S/h200-token_ops-2026-11-30-s3.json "$out/host_launch.json" $S/h200-dense_gemm-2026-11-30-s5.json \
    $S/h200x2-alltoall-bf16-2026-11-30-s5.json $S/h200x2-alltoall-f32-2026-11-30-s5.json --link-algo ours \
    --save "$out/h200-ours-params-s6-host.json" > "$out/calibrate-host.log" 2>&1; echo "== calibrate (host sweep only new): exit $?"
fi
for ep in $S/h200x2-ep-qwen3-2026-11-30-s6-ranked.json $S/h200x2-ep-deepseek-2026-11-30-s6-ranked.json \
          $S/h200x2-ep-qwen3-2026-11-30-s5.json $S/h200x2-ep-deepseek-2026-11-30-s5.json; do
  for p in "$out/h200-ours-params-s6-gpu.json" "$out/h200-ours-params-s6-host.json" $S/h200-ours-params-scale11-gpu.json; do
    [ -s "$p" ] || continue
    log="$out/validate-$(basename "$ep" .json)-$(basename "$p" .json).log"
    $M simulate --validate "$ep" --params "$p" > "$log" 2>&1
    echo "== $(basename "$ep") with $(basename "$p"): $(grep -oE "mean [0-9.]+ %, max [0-9.]+ %" "$log")"
    grep -E "^ +128 " -A1 "$log" | cut -c1-200
  done
done
echo "== done in ${SECONDS}s"
