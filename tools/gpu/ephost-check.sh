#!/usr/bin/env bash
# GPU machine, 2 x H200 (nvidia-h200-x2), after `bash tools/gpu/pack.sh`, under 4 minutes: where the EP forward's host
# time goes (issue 10, branch ephost).
#   1. the EP test classes with CUDA (forward, kept buffers, enqueue orders, EPLB slots, the launch list per phase), the
#      asynchronous op table uploads (OpTableUploadsTests: 13 back-to-back all-to-allvs), the bf16 input conversion, the
#      kernel lookup of LoadKernel (KernelLaunchTests)
#   2. (run after DeepSeek-V3's sync run in 3) bench sweep host_launch on cuda:0 with the new rows: route / experts phase on a
#      busy stream, after a copy, after the input upload; two devices (context switch, launch alternating devices, route phase
#      of two ranks in turn, each beside its one-device control); JSON in $OUT/h200-host_launch-ephost.json
#   3. moe bench layer --parallel ep, Qwen3-30B-A3B T = 1,16,128,1024 and DeepSeek-V3 T = 1,128, each twice: op tables
#      uploaded synchronously (the default) and MOE_COLLECTIVE_OPS_UPLOAD=async; JSON in $OUT (h200x2-ep-<preset>-ephost-
#      <sync|async>.json); a table per rank and phase of device span / host enqueue span (us)
#   4. time allowing: the EP tests again with MOE_COLLECTIVE_OPS_UPLOAD=async (same bits expected)
# Logs in $OUT/ephost.tgz. Look at: "== sweep rows" (alternating devices minus one device = the switch's cost; busy
# stream / after copy / after upload against the idle-stream "host route phase" and "host experts phase" rows),
# "== per rank" (host span against device span per phase), "== A/B" (phase sum and wall, sync against async uploads).
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-ephost; mkdir -p "$out"
trap 'tar czf "$OUT/ephost.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
step() { # seconds, label, command...
  local s=$1 label=$2; shift 2
  timeout "$s" "$@" > "$out/$label.log" 2>&1; echo "== $label: exit $? (${SECONDS}s so far)"
}
left() { [ $((230 - SECONDS)) -gt "$1" ]; } # enough of the 230 s budget left for a step of $1 s?
cap() { local c=$(( $1 < 232 - SECONDS ? $1 : 232 - SECONDS )); echo $(( c > 1 ? c : 1 )); }
EP_TESTS="-class MoeRuntime.Tests.Runtime.ExpertParallelReuseTests -class MoeRuntime.Tests.Runtime.ExpertParallelEnqueueOrderTests -class MoeRuntime.Tests.Eplb.ExpertParallelEplbTests"

# 1. Tests (the kernels they compile are cached for the benches).
step 70 tests $T $EP_TESTS -class MoeRuntime.Tests.Scaling.EpHostOpsTests -class MoeRuntime.Tests.Collectives.OpTableUploadsTests \
  -class MoeRuntime.Tests.Runtime.HostInputStageTests -class MoeRuntime.Tests.Accelerators.KernelLaunchTests
grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -30; grep -E "Total:" "$out/tests.log"

# 3. The EP layer, op tables uploaded synchronously and asynchronously.
perrank() { # log: per T and rank, "phase device/host" spans in us from the per-rank marks
  awk '/^ +[0-9]+ +[0-9.]+ / {t = $1}
       /^  rank [0-9] device:/ {
         line = $0; sub(/^  rank [0-9] device: /, "", line); split(line, parts, / \| host: /)
         n = split(parts[1], d, " "); for (i = 1; i < n; i += 2) {split(d[i + 1], ab, "-"); dev[d[i]] = ab[2] - ab[1]}
         n = split(parts[2], h, " "); for (i = 1; i < n; i += 2) {split(h[i + 1], ab, "-"); host[h[i]] = ab[2] - ab[1]}
         s = sprintf("  T=%-5s rank %s", t, $2)
         split("route dispatch experts combine output", ps, " ")
         for (i = 1; i <= 5; i++) {p = ps[i]; s = s sprintf(" | %-8s %5s/%-5s", p, (p in dev) ? dev[p] : "-", (p in host) ? host[p] : "-")}
         print s; delete dev; delete host}' "$1"
}
ep() { # preset, short name, tokens, seconds, sync|async
  local j="$OUT/h200x2-ep-$2-ephost-$5.json" env=""
  [ "$5" = async ] && env="MOE_COLLECTIVE_OPS_UPLOAD=async"
  step "$4" "ep-$2-$5" env $env $M bench layer --parallel ep --devices cuda:0,cuda:1 --preset "$1" --tokens "$3" \
    --warmup 3 --samples 10 --json "$j"
  cp -f "$j" "$out/" 2>/dev/null
  echo "== $2, op tables $5: T wall phases route dispatch experts combine output rows/rank"
  grep -E "^ +[0-9]+ +[0-9.]+ " "$out/ep-$2-$5.log"
  echo "== per rank, $2, $5: device span / host enqueue span, us"
  perrank "$out/ep-$2-$5.log"
}
for u in sync async; do
  if left 35; then ep qwen3-30b-a3b qwen3 1,16,128,1024 "$(cap 40)" $u; else echo "== qwen3 $u: skipped (time)"; fi
done
if left 30; then ep deepseek-v3 deepseek 1,128 "$(cap 45)" sync; else echo "== deepseek sync: skipped (time)"; fi
# 3b. The host sweep with the two-device rows (before DeepSeek-V3's async run).
if left 40; then
  step "$(cap 60)" host_launch $B sweep host_launch --device cuda:0 --json "$OUT/h200-host_launch-ephost.json"
  echo "== sweep rows (host us per call)"
  grep -E "^\| host " "$out/host_launch.log" | awk -F'|' '{printf "  %-36s %-32s %s\n", $2, $3, $4}'
  grep -E "skipped" "$out/host_launch.log"
else echo "== host_launch: skipped (time)"; fi

if left 30; then ep deepseek-v3 deepseek 1,128 "$(cap 45)" async; else echo "== deepseek async: skipped (time)"; fi
echo "== A/B (T: phase sum sync / async us, wall sync / async us)"
for p in qwen3 deepseek; do
  [ -s "$out/ep-$p-sync.log" ] && [ -s "$out/ep-$p-async.log" ] || continue
  awk -v name=$p 'FNR == 1 {o++} /^ +[0-9]+ +[0-9.]+ / {ph[o, $1] = $3; wall[o, $1] = $2; if (o == 1) ts[++n] = $1}
       END {for (i = 1; i <= n; i++) {t = ts[i]; printf "  %s T=%s: phases %s / %s, wall %s / %s\n", name, t, ph[1, t], ph[2, t], wall[1, t], wall[2, t]}}' \
    "$out/ep-$p-sync.log" "$out/ep-$p-async.log"
done

# 4. The EP tests through the asynchronous uploads, time allowing.
if left 40; then
  step "$(cap 60)" tests-async env MOE_COLLECTIVE_OPS_UPLOAD=async $T $EP_TESTS
  grep -E "\[FAIL\]" -A 8 "$out/tests-async.log" | head -20; grep -E "Total:" "$out/tests-async.log"
else echo "== tests-async: skipped (time)"; fi
echo "== done in ${SECONDS}s"
