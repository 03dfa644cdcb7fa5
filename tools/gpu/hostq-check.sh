#!/usr/bin/env bash
# GPU machine, 2 x H200 (nvidia-h200-x2), after `bash tools/gpu/pack.sh`, under 3 minutes: the scale model's host enqueue
# term (issue 10, docs/SCALING.md "Host enqueue"). No EP layer is measured again: validation uses the repository's runs.
#   1. sweep host_launch on cuda:0 (then cuda:1, time allowing, for the spread; only cuda:0's JSON is fitted): host
#      microseconds per enqueue of the EP forward's ops, copies, event marks and a one-rank all-to-allv
#   2. moe simulate --calibrate: the repository's s3 sweeps (as h200-ours-params-s3.json) + this host sweep -> s3+host params;
#      and the committed s2 params + this host sweep alone -> s2+host params (the host term is the only change from s2)
#   3. moe simulate --validate on the four EP layer runs (s2, s3 x Qwen3, DeepSeek-V3) with s3+host, s2+host and s2
#   4. the CPU tests of the host term
# JSON and logs in $OUT/hostq.tgz. Look at: "== host_launch" (us per call), "== calibrate" ("host:" lines), the validate
# tables and the "== summary" lines (|error| mean and max per EP run and params file).
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-hostq; mkdir -p "$out"
trap 'tar czf "$OUT/hostq.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
S=docs/scaling
step() { # seconds, label, command...
  local s=$1 label=$2; shift 2
  timeout "$s" "$@" > "$out/$label.log" 2>&1; echo "== $label: exit $? (${SECONDS}s so far)"
}

step 90 host_launch $B sweep host_launch --device cuda:0 --json "$out/h200-host_launch.json"
if [ "$SECONDS" -lt 70 ]; then
  step 60 host_launch-cuda1 $B sweep host_launch --device cuda:1 --json "$out/h200-host_launch-cuda1.json"
else echo "== host_launch-cuda1: skipped (time)"; fi

host=()
[ -s "$out/h200-host_launch.json" ] && host=("$out/h200-host_launch.json")
[ ${#host[@]} -gt 0 ] || echo "== no host_launch JSON: the params below have no host term (term = 0)"
$M simulate --calibrate $S/h200-grouped_gemm_ep-qwen3-2026-11-30-s3.json $S/h200-grouped_gemm_ep-deepseek-2026-11-30-s3.json \
  $S/h200-token_ops-2026-11-30-s3.json $S/h200x2-alltoall-2026-11-30.json "${host[@]}" --link-algo ours \
  --save "$out/h200-ours-params-s3-host.json" > "$out/calibrate-s3-host.log" 2>&1; echo "== calibrate s3+host: exit $?"
grep -E "^(gemm|link|routing|movement)" "$out/calibrate-s3-host.log"
if [ ${#host[@]} -gt 0 ]; then
  $M simulate --calibrate "${host[@]}" --params $S/h200-ours-params-s2.json --save "$out/h200-ours-params-s2-host.json" \
    > "$out/calibrate-s2-host.log" 2>&1; echo "== calibrate s2+host: exit $?"
fi

validate() { # EP layer JSON, params file, print the table (1) or only log it (0)
  [ -s "$1" ] && [ -s "$2" ] || return 0
  local log="$out/validate-$(basename "$1" .json)-$(basename "$2" .json).log"
  timeout 30 $M simulate --validate "$1" --params "$2" > "$log" 2>&1
  [ "$3" = 1 ] || return 0
  echo "== validate $(basename "$1") with $(basename "$2")"
  grep -vE "^# (params|validate|host)" "$log" | sed -E 's/ \(measured = .*//; s/per phase measured/phases m/' | cut -c1-150
}
# Tables: the new params (s3 sweeps + host; s2 + host); the s2 baseline only in the summary (its tables are in docs/SCALING.md).
for ep in $S/h200x2-ep-qwen3-2026-11-30-s3.json $S/h200x2-ep-deepseek-2026-11-30-s3.json $S/h200x2-ep-qwen3-2026-11-30-s2.json $S/h200x2-ep-deepseek-2026-11-30-s2.json; do
  validate "$ep" "$out/h200-ours-params-s3-host.json" 1
  validate "$ep" "$out/h200-ours-params-s2-host.json" 1
  validate "$ep" $S/h200-ours-params-s2.json 0
done
# The large-EP prediction (docs/SCALING.md's NVL72 table: the default params) with the host term (one process per GPU).
if [ ${#host[@]} -gt 0 ]; then
  $M simulate --calibrate "${host[@]}" --params $S/h200-params.json --save "$out/h200-params-host.json" > "$out/calibrate-default-host.log" 2>&1
  timeout 60 $M simulate --params "$out/h200-params-host.json" --model deepseek-v3 --gpus 72 --ep 8,16,32,64,72 --tokens-per-gpu 1..1024 \
    --link nvl72 > "$out/simulate-nvl72-host.log" 2>&1; echo "== simulate nvl72 with the host term: exit $?"
  grep -E "^EP" "$out/simulate-nvl72-host.log" | cut -c1-220
fi

step 120 tests $T -class MoeRuntime.Tests.Scaling.HostTimelineTests -class MoeRuntime.Tests.Scaling.EpHostOpsTests \
  -class MoeRuntime.Tests.Scaling.HostCalibrationTests -class MoeRuntime.Tests.Scaling.ScaleModelTests -class MoeRuntime.Tests.Scaling.CurveFitTests \
  -class MoeRuntime.Tests.Cli.SimulateCommandTests
grep -E "\[FAIL\]" -A 6 "$out/tests.log" | head -30; grep -E "Total:" "$out/tests.log"

# The figures last, so that they survive a cut of the output's start.
for d in "" -cuda1; do
  [ -s "$out/host_launch$d.log" ] || continue
  echo "== host_launch${d:- cuda:0}: host us per call"
  grep -E "^\| host|skipped" "$out/host_launch$d.log" | sed -E 's/ +/ /g' | cut -d'|' -f2-4
done
echo "== fitted host part (s3+host; s2+host)"
grep -hE "^host|^  host" "$out/calibrate-s3-host.log" | cut -c1-400; grep -hE "^host" "$out/calibrate-s2-host.log" 2>/dev/null
echo "== summary (|error| mean, max; EP run - params)"
for f in "$out"/validate-*.log; do [ -s "$f" ] && echo "$(basename "$f" .log | sed 's/^validate-h200x2-ep-//; s/-2026-11-30-/ /; s/-h200-ours-params-/ - /'): $(grep -oE "mean [0-9.,]+ %, max [0-9.,]+ %" "$f")"; done
echo "== done in ${SECONDS}s"
