#!/usr/bin/env bash
# GPU machine, 2 GPUs, after tools/gpu/pack.sh: issue 4, two-shot over LL at its new threshold (32 KB by default,
# MOE_LL_TWOSHOT_MAX_BYTES) and the fence A/B (MOE_LL_FENCE=system|acqrel|warp|none). Under 5 minutes:
#   1. the LL test class and AllReduceTests with the defaults (the LL class raises its communicators' threshold to 1 MB
#      itself, and checks the default's routing around 32 KB);
#   2. the LL class 4 times with MOE_LL_FENCE=warp MOE_LL_TWOSHOT_MAX_BYTES=1M, passes and failures counted;
#   3. moe bench allreduce twoshot,nccl,oneshot,auto, bf16, 1K-4M, graph-timed, defaults;
#   4. the two-shot rows 1K-1M again: on the schedule path (threshold 0), and on LL (threshold 1M) with each fence;
#   5. if time is left: the LL class with acqrel (2 runs) and with none (1 run: the lost-line failure, for reference).
# Tables: us per call; "L" = ran on LL; auto's column adds what it picked. Logs in $OUT/twoshot5.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-twoshot5; rm -rf "$out"; mkdir -p "$out"
trap 'tar czf "$OUT/twoshot5.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
LL=MoeRuntime.Tests.Collectives.LowLatencyAllReduceTests
budget=${TWOSHOT5_BUDGET:-280}
left() { echo $((budget - SECONDS)); }
totals() { grep -oE "Total: [0-9]+, Errors: [0-9]+, Failed: [0-9]+, Skipped: [0-9]+" "$1" | tail -1; }
failed() { grep -oE "Failed: [0-9]+" "$1" | tail -1 | grep -oE "[0-9]+" || echo "?"; }
fails() { grep -E "\[FAIL\]" -A 3 "$1" | cut -c1-400 | head -"${2:-8}"; }

# Runs the LL class $2 times with the environment in $4.. (label $3), starting no run after second $1 of the script
# nor with under a minute left; prints one line per run and the count.
ll_runs() {
  local until=$1 runs=$2 label=$3 pass=0 fail=0; shift 3
  for i in $(seq 1 "$runs"); do
    { [ "$(left)" -gt 60 ] && [ $SECONDS -lt "$until" ]; } || { echo "  $label: run $i and later skipped (time)"; break; }
    env "$@" timeout 55 $T -class $LL > "$out/ll-$label-$i.log" 2>&1; rc=$?
    f=$(failed "$out/ll-$label-$i.log")
    if [ $rc -eq 0 ] && [ "$f" = "0" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
    echo "  $label run $i: exit $rc, $(totals "$out/ll-$label-$i.log") (${SECONDS}s)"
    [ "$f" = "0" ] || fails "$out/ll-$label-$i.log" 6
  done
  echo "== LL class, $label: $pass passed, $fail failed"
}

# One bench run: label, algorithms, largest size, then the environment.
bench() {
  local label=$1 algos=$2 max=$3; shift 3
  [ "$(left)" -gt 25 ] || { echo "bench $label: skipped (time)"; return; }
  local limit=$(( $(left) < 70 ? $(left) : 70 ))
  env "$@" timeout $limit $M bench allreduce --devices cuda:0,cuda:1 --algo "$algos" --dtype bf16 --min 1K --max "$max" \
    --timing graph --csv "$out/bench-$label.csv" > "$out/bench-$label.log" 2>&1
  echo "bench $label ($*): exit $? (${SECONDS}s)"
}

# The CSVs as one table: a row per size, a column per run and algorithm.
table() {
  awk -F, '
    function human(b) { return b >= 1048576 ? b / 1048576 "M" : b / 1024 "K" }
    FNR == 1 { n = split(FILENAME, p, "/"); lab = p[n]; sub(/^bench-/, "", lab); sub(/\.csv$/, "", lab); next }
    {
      col = lab ":" tolower($1)
      if (!(col in seen)) { seen[col] = 1; cols[++nc] = col }
      if (!($4 in seenSize)) { seenSize[$4] = 1; sizes[++ns] = $4 }
      v = sprintf("%.2f", $6)
      if ($10 ~ /\(ll\)/) v = v "L"
      if (tolower($1) == "auto") { pk = tolower($10); sub(/\(ll\)/, "", pk); sub(/oneshot/, "1s", pk); sub(/twoshot/, "2s", pk); v = v "(" pk ")" }
      if ($9 > 0) v = v " WRONG" $9
      cell[$4, col] = v
    }
    END {
      printf "%6s", "size"; for (c = 1; c <= nc; c++) printf " %15s", cols[c]; print ""
      for (s = 1; s <= ns; s++) {
        printf "%6s", human(sizes[s])
        for (c = 1; c <= nc; c++) printf " %15s", ((sizes[s], cols[c]) in cell) ? cell[sizes[s], cols[c]] : "-"
        print ""
      }
    }' "$@"
}

timeout 110 $T -class $LL -class MoeRuntime.Tests.Collectives.AllReduceTests > "$out/tests-default.log" 2>&1
echo "== defaults, LL class + AllReduceTests: exit $?, $(totals "$out/tests-default.log") (${SECONDS}s)"
fails "$out/tests-default.log" 16

ll_runs 150 2 warp MOE_LL_FENCE=warp MOE_LL_TWOSHOT_MAX_BYTES=1M   # the benches keep the last ~110 s

bench default twoshot,nccl,oneshot,auto 4M
bench sched twoshot 1M MOE_LL_TWOSHOT_MAX_BYTES=0
bench system1M twoshot 1M MOE_LL_FENCE=system MOE_LL_TWOSHOT_MAX_BYTES=1M
bench warp1M twoshot 1M MOE_LL_FENCE=warp MOE_LL_TWOSHOT_MAX_BYTES=1M
bench acqrel1M twoshot 1M MOE_LL_FENCE=acqrel MOE_LL_TWOSHOT_MAX_BYTES=1M
echo "== AllReduce bf16, 2 GPUs, us per call (L: on LL); default = 32 KB threshold, system fence; sched = two-shot on the schedule path"
files=()
for label in default sched system1M warp1M acqrel1M; do [ -s "$out/bench-$label.csv" ] && files+=("$out/bench-$label.csv"); done
[ ${#files[@]} -gt 0 ] && table "${files[@]}"
grep -hE "rror|xception" "$out"/bench-*.log | cut -c1-300 | head -6

ll_runs "$budget" 2 acqrel MOE_LL_FENCE=acqrel MOE_LL_TWOSHOT_MAX_BYTES=1M
[ "${LL_NONE:-0}" = 1 ] && ll_runs "$budget" 1 none MOE_LL_FENCE=none MOE_LL_TWOSHOT_MAX_BYTES=1M
echo "== done in ${SECONDS}s"
