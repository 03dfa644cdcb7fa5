#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-first session). steal21d.sh timed each layer once per order:
# steal 2-4% ahead of dynamic on Mixtral-8x7B and Qwen3-30B-A3B, dynamic 13% ahead on DeepSeek-V3 T = 8192 (its gate_up:
# 7.66 ms against 9.77, final21e.sh). Here the layers again, dynamic and steal alternating, three times, and the Runtime
# test namespace with the steal order everywhere (MOE_GROUPED_GEMM_WGMMA_SCHEDULE=steal). Logs in $OUT/layers21f.tgz.
set -uo pipefail
out=/tmp/moe-layers21f; mkdir -p "$out"
trap 'tar czf "$OUT/layers21f.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
SECONDS=0
lay() { MOE_GROUPED_GEMM_WGMMA_SCHEDULE=$1 timeout $2 $M bench layer "${@:4}" > "$out/$3-$1-$r.log" 2>&1
        echo "== $3 schedule $1 ($r): exit $? (${SECONDS}s)"; grep -hE "^(deepseek|mixtral|qwen3)" "$out/$3-$1-$r.log"; }
for r in 1 2 3; do
  for s in dynamic steal; do
    lay $s 40 mx --preset mixtral-8x7b --tokens 128,1024,8192
    lay $s 30 qw --preset qwen3-30b-a3b --tokens 128,1024,8192
    lay $s 30 ds8k --preset deepseek-v3 --tokens 8192
  done
done
MOE_GROUPED_GEMM_WGMMA_SCHEDULE=steal timeout 150 $T -namespace MoeRuntime.Tests.Runtime > "$out/runtime.log" 2>&1
echo "== Runtime namespace, steal order: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 10 "$out/runtime.log" | head -40; grep -E "Total:" "$out/runtime.log" | tail -1
echo "== done in ${SECONDS}s"
