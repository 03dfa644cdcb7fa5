#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-seventh session, run inline after final27d.sh on the same
# machine; logs were written to $OUT/runN.log). Qwen3-30B-A3B's T = 1 sweep with Mixtral-8x7B's rows before it in the
# process, and with DeepSeek-V3's after it, twice each: its plain down*w read 85-86% in Qwen3-only processes and 81% in
# all-preset ones. (The sweep keeps its own preset order, Mixtral-8x7B, Qwen3-30B-A3B, DeepSeek-V3, whatever the list.)
set -uo pipefail
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
i=0
for m in mixtral,qwen3 qwen3,deepseek mixtral,qwen3 qwen3,deepseek; do
  i=$((i+1)); f=$OUT/run$i.log
  MOE_SWEEP_MODELS=$m MOE_SWEEP_TOKENS=1 timeout 60 $B sweep grouped_gemm --device cuda:0 > $f 2>&1
  echo "== $m exit $? ($SECONDS s)"; grep -E "^\| qwen3.*(down\*w|gate_up) " $f | grep -v cold | cut -c1-130
done
