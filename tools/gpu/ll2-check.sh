#!/usr/bin/env bash
# GPU machine, 2 GPUs: the two-shot-over-LL investigation (issue 4). The context-record test (PeerTests), then with
# MOE_LL_TWOSHOT=1: the first calls of 40 fresh communicators (the pattern that lost lines), three times, one-shot
# and two-shot; then the whole LL class. A timeout's message now carries, per rank and sender, how many of the
# call's lines arrived, were never written, or held another epoch. Logs in $OUT/ll2.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-ll2; mkdir -p "$out"
trap 'tar czf "$OUT/ll2.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
fails() { grep -E "\[FAIL\]" -A 3 "$1" | cut -c1-1500 | head -${2:-12}; grep -E "Total:" "$1"; }

timeout 120 $T -class MoeRuntime.Tests.Accelerators.PeerTests > "$out/peer.log" 2>&1; echo "== peer tests: exit $?"; fails "$out/peer.log"
for i in 1 2 3; do
  MOE_LL_TWOSHOT=1 timeout 150 $T -method "MoeRuntime.Tests.Collectives.LowLatencyAllReduceTests.FirstCallsOfFreshCommunicatorsAreExact" \
    > "$out/fresh-$i.log" 2>&1; echo "== fresh communicators, run $i: exit $?"; fails "$out/fresh-$i.log" 8
done
MOE_LL_TWOSHOT=1 timeout 240 $T -class MoeRuntime.Tests.Collectives.LowLatencyAllReduceTests > "$out/ll-tests.log" 2>&1
echo "== LL class with two-shot on: exit $?"; fails "$out/ll-tests.log" 40
echo "== summary"; grep -hE "Total:" "$out"/*.log
grep -hoE "LL: rank .*" "$out"/*.log | cut -c1-1200 | sort | uniq -c | head -10
