#!/usr/bin/env bash
# GPU machine, one GPU (cuda:0), after tools/gpu/pack.sh: issue 3, routing's token-team kernel for DeepSeek-V3's shape
# (topk_routing_teams_*: 8 lanes a token, 4 tokens a warp, a group a lane, the choices by rank among the candidates at
# or above the kept groups' smallest second key; default from 1024 tokens, MOE_ROUTING_TEAMS=0 turns it off).
# 1. The routing sweep (graph replays; 90 s), which has in-session A/B rows for DeepSeek at T=1/128/1024/8192:
#    "teams" = the new kernel forced at every T, "old" = the kernels before it (one token a warp; two from T=1024).
#    The plain "routing deepseek grouped" rows run the default (teams from T=1024).
# 2. TopKRoutingTests with CUDA (incl. TeamsMatchTheOldPathBitForBit: teams against the old kernels bit for bit, the CPU
#    twin and the reference; the DeepSeek cases of MatchesTheReference from 1024 tokens take the teams too); up to 150 s,
#    ending by 230 s.
# 3. Only while 30 s of the ~4 minutes are left: the sweep again with MOE_ROUTING_TEAMS=0 for the whole process.
# Logs in $OUT/route5.tgz; on stdout: test totals and failures, then the DeepSeek rows of each sweep and a
# side-by-side "teams / old / default" table.
set -uo pipefail
out=/tmp/moe-route5; mkdir -p "$out"
trap 'tar czf "$OUT/route5.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1
sweep() { # label, seconds, env...
  local label=$1 limit=$2; shift 2
  env "$@" timeout "$limit" $B sweep routing --device cuda:0 --json "$out/sweep-$label.json" > "$out/sweep-$label.log" 2>&1
  echo "sweep $label: exit $? (${SECONDS}s)"
  grep -E "^\| routing" "$out/sweep-$label.log" | awk -F'|' '{printf "%-40s %-24s %9s us  %s\n", $2, $3, $4, $8}' | sed 's/  */ /g'
}
sweep default 90
# DeepSeek side by side: T, teams, old, default (us).
echo "deepseek T | teams us | old us | default us"
grep -E "^\| routing deepseek grouped( teams| old)? +\|" "$out/sweep-default.log" 2>/dev/null |
  awk -F'|' '{n=$2; gsub(/ +$/,"",n); gsub(/^ +/,"",n); split($3,s," "); t=s[1]; v=$4; gsub(/ /,"",v);
              if (n ~ /teams$/) te[t]=v; else if (n ~ /old$/) ol[t]=v; else de[t]=v; ts[t]=1}
       END {for (t in ts) printf "%s | %s | %s | %s\n", t, te[t], ol[t], de[t]}' | sort -t= -k2 -n
timeout "$((230 - SECONDS < 150 ? 230 - SECONDS : 150))" $T -class MoeRuntime.Tests.Kernels.TopKRoutingTests > "$out/tests.log" 2>&1
echo "tests: exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -40; grep -E "Total:" "$out/tests.log"
left=$((230 - SECONDS))
if [ "$left" -ge 30 ]; then sweep teams-off "$((left < 60 ? left : 60))" MOE_ROUTING_TEAMS=0
else echo "sweep teams-off: skipped (${SECONDS}s used; the old rows are in the default sweep)"; fi
