#!/usr/bin/env bash
# GPU machine, 2 x H200 (nvidia-h200-x2), after `bash tools/gpu/pack.sh`, under 4 minutes: expert-parallel ranks that start
# their experts together (issues 5 and 10, branch epstart).
#   1. the EP test classes with CUDA: interleaved against ranked enqueue (same bits), kept buffers, EPLB, the launch list
#      per phase, EP against one GPU
#   2. moe bench layer --parallel ep --enqueue interleaved,ranked, Qwen3-30B-A3B then DeepSeek-V3, T = 1 .. 4096: both
#      orders on the same weights in one process; JSON into $OUT as h200x2-ep-<preset>-2026-11-30-s6.json (interleaved,
#      the new default) and -s6-ranked.json (the order before)
#   3. moe simulate --validate of each JSON with docs/scaling/h200-ours-params-scale11-gpu.json (the model follows the
#      run's "enqueue"): mean / max error, and each rank's experts span at T=128, measured and predicted
# Logs in $OUT/epstart.tgz. Look at: "== T=128 per rank" (rank 1's experts start: +142 us after rank 0 in the s5 run,
# ranked), "== gain" (phase sums and wall, interleaved against ranked), "== summary" (errors; s5: Qwen3 24.1% / 37.2%,
# DeepSeek-V3 7.8% / 17.4%).
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-epstart; mkdir -p "$out"
trap 'tar czf "$OUT/epstart.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
P=docs/scaling/h200-ours-params-scale11-gpu.json
SECONDS=0
step() { # seconds, label, command...
  local s=$1 label=$2; shift 2
  timeout "$s" "$@" > "$out/$label.log" 2>&1; echo "== $label: exit $? (${SECONDS}s so far)"
}
left() { [ $((230 - SECONDS)) -gt "$1" ]; } # enough of the 230 s budget left for a step of $1 s?
cap() { local c=$(( $1 < 232 - SECONDS ? $1 : 232 - SECONDS )); echo $(( c > 1 ? c : 1 )); } # a step's timeout: at most what the budget has left (never 0: no limit)

# 1. Tests (the kernels they compile are cached for the benches).
step 200 tests $T -class MoeRuntime.Tests.Runtime.ExpertParallelEnqueueOrderTests -class MoeRuntime.Tests.Runtime.ExpertParallelReuseTests \
  -class MoeRuntime.Tests.Eplb.ExpertParallelEplbTests -class MoeRuntime.Tests.Scaling.EpHostOpsTests
grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -30; grep -E "Total:" "$out/tests.log"

# 2. The EP layer in both orders.
bench() { # preset, short name, seconds
  local j="$OUT/h200x2-ep-$2-2026-11-30-s6.json"
  step "$3" "ep-$2" $M bench layer --parallel ep --devices cuda:0,cuda:1 --preset "$1" --tokens 1,16,128,1024,4096 \
    --enqueue interleaved,ranked --json "$j"
  cp -f "$j" "${j%.json}-ranked.json" "$out/" 2>/dev/null
  echo "== $2: rows per order (T wall phases route dispatch experts combine output rows/rank)"
  grep -E "^# EP MoE|^ +[0-9]+ +[0-9.]+ " "$out/ep-$2.log" | sed -E 's/^# EP MoE layer .*experts enqueued ([a-z]+).*/  -- \1/'
  echo "== T=128 per rank, $2 (us from the forward's start)"
  awk '/experts enqueued/ {match($0, /enqueued [a-z]+/); order = substr($0, RSTART + 9, RLENGTH - 9)}
       $1 == "128" {show = 1; next} /^ +[0-9]+ +[0-9.]+ / {show = 0}
       show && /rank [0-9] device/ {print "  " order ": " $0}' "$out/ep-$2.log" | cut -c1-260
}
if left 30; then bench qwen3-30b-a3b qwen3 "$(cap 80)"; else echo "== qwen3: skipped (time)"; fi
if left 30; then bench deepseek-v3 deepseek "$(cap 100)"; else echo "== deepseek: skipped (time)"; fi
# EP against one GPU (-class and -method in one call select their intersection: a call of its own), time allowing.
if left 25; then
  step "$(cap 40)" tests-ep-vs-single $T -method MoeRuntime.Tests.Runtime.MoeLayerTests.TensorAndExpertParallelMatchSingleAccelerator
  grep -E "\[FAIL\]" -A 8 "$out/tests-ep-vs-single.log" | head -20; grep -E "Total:" "$out/tests-ep-vs-single.log"
else echo "== tests-ep-vs-single: skipped (time)"; fi

# Gain: interleaved against ranked per T (phase sum = what the scale model is validated on; wall = the forward's host clock).
echo "== gain (T: phases interleaved / ranked us, wall interleaved / ranked us)"
for p in qwen3 deepseek; do
  [ -s "$out/ep-$p.log" ] || continue
  awk -v name=$p '/experts enqueued interleaved/ {o = "i"} /experts enqueued ranked/ {o = "r"}
       /^ +[0-9]+ +[0-9.]+ / {ph[o, $1] = $3; wall[o, $1] = $2; if (o == "i") ts[++n] = $1}
       END {for (i = 1; i <= n; i++) {t = ts[i]; printf "  %s T=%s: phases %s / %s, wall %s / %s\n", name, t, ph["i", t], ph["r", t], wall["i", t], wall["r", t]}}' "$out/ep-$p.log"
done

# 3. Validation of each run with the scale11 GPU params (this step needs no GPU).
for p in qwen3 deepseek; do
  for f in "$OUT/h200x2-ep-$p-2026-11-30-s6.json" "$OUT/h200x2-ep-$p-2026-11-30-s6-ranked.json"; do
    [ -s "$f" ] || continue
    log="$out/validate-$(basename "$f" .json).log"
    timeout 15 $M simulate --validate "$f" --params "$P" > "$log" 2>&1
    echo "== validate $(basename "$f") (exit $?): T=128 experts per rank"
    awk '$1 == "128" {print "  " $0; getline; print "  " $0}' "$log" | cut -c1-230
  done
done
echo "== summary (|error| mean, max; EP run with $(basename "$P"))"
for f in "$out"/validate-*.log; do [ -s "$f" ] && echo "$(basename "$f" .log): $(grep -oE "mean [0-9.]+ %, max [0-9.]+ %" "$f")"; done
echo "== done in ${SECONDS}s"
