#!/usr/bin/env bash
# GPU machine, one GPU (cuda:0), after tools/gpu/pack.sh: issue 3, the token-team routing kernel made cheaper
# (route6: each team's row staged coalesced through shared memory by cp.async instead of 8 lanes reading 128 bytes
# each, the sanitised bias staged once a block, keys without the logit's sanitize and with a branch-free order key,
# the group's top two by blocks of 4). Bit-identical to the two-token kernel; the tests decide that.
# 1. TeamsMatchTheOldPathBitForBit with CUDA (teams against the two-token kernel bit for bit, incl. NaN/Inf/FLT_MAX
#    biases, non-finite logits, underflowing scores; the CPU twin and the reference); up to 80 s.
# 2. The routing sweep (graph replays; up to 85 s): DeepSeek rows at T=1/128/1024/2048/4096/8192, "teams" = the team
#    kernel forced at every T, "old" = the kernels before it (one token a warp; two from 1024), plain = the default
#    (teams from TopKRouting.DefaultTeamsFrom = 4096). 2048 and 4096 have only the teams/old/default rows.
# 3. The whole TopKRoutingTests class with CUDA in what is left of 175 s (cut by timeout, exit 124, if it needs more).
# Logs in $OUT/route6.tgz; on stdout: GPU, test totals and failures, every routing row, and the DeepSeek table
# "T | teams us | old us | default us". About 3 minutes (175 s and the start-ups).
set -uo pipefail
out=/tmp/moe-route6; mkdir -p "$out"
trap 'tar czf "$OUT/route6.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1
timeout 80 $T -method MoeRuntime.Tests.Kernels.TopKRoutingTests.TeamsMatchTheOldPathBitForBit > "$out/teams-test.log" 2>&1
echo "teams test: exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 8 "$out/teams-test.log" | head -30; grep -E "Total:" "$out/teams-test.log"
timeout 85 $B sweep routing --device cuda:0 --json "$out/sweep.json" > "$out/sweep.log" 2>&1
echo "sweep: exit $? (${SECONDS}s)"
grep -E "^\| routing" "$out/sweep.log" | awk -F'|' '{printf "%-40s %-24s %9s us  %s\n", $2, $3, $4, $8}' | sed 's/  */ /g'
echo "deepseek T | teams us | old us | default us"
grep -E "^\| routing deepseek grouped( teams| old)? +\|" "$out/sweep.log" 2>/dev/null |
  awk -F'|' '{n=$2; gsub(/ +$/,"",n); gsub(/^ +/,"",n); split($3,s," "); t=s[1]; v=$4; gsub(/ /,"",v);
              if (n ~ /teams$/) te[t]=v; else if (n ~ /old$/) ol[t]=v; else de[t]=v; ts[t]=1}
       END {for (t in ts) printf "%s | %s | %s | %s\n", t, te[t], ol[t], de[t]}' | sort -t= -k2 -n
left=$((175 - SECONDS))
if [ "$left" -ge 20 ]; then
  timeout "$left" $T -class MoeRuntime.Tests.Kernels.TopKRoutingTests > "$out/tests.log" 2>&1
  echo "tests (whole class, ${left}s allowed): exit $? (${SECONDS}s)"
  grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -30; grep -E "Total:" "$out/tests.log"
else echo "tests (whole class): skipped (${SECONDS}s used)"; fi
