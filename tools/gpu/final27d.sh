#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-seventh session). Main at the session's close: the test suite
# but the wgmma class (which confirm27a.sh ran on the same kernels), `moe demo`, and Qwen3-30B-A3B's T = 1 sweep in two
# Qwen3-only processes (its plain down*w row read 85.4-85.7% in such processes in the twenty-fifth session, 81% in
# all-preset ones). Logs in $OUT/final27d.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-final27d; mkdir -p "$out"
trap 'tar czf "$OUT/final27d.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
for v in 1 2; do
  MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/qwen-$v.log" 2>&1
  echo "== qwen3 T=1 $v: exit $? (${SECONDS}s)"; grep -E "^\| qwen3" "$out/qwen-$v.log" | grep -v cold | cut -c1-130
done
timeout 90 $M demo > "$out/demo.log" 2>&1
echo "== demo: exit $? (${SECONDS}s)"; tail -12 "$out/demo.log"
timeout $((575 - SECONDS)) $T -class- $K.GroupedGemmWgmmaTests > "$out/suite.log" 2>&1
echo "== suite without the wgmma class: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 14 "$out/suite.log" | head -80; grep -E "Total:" "$out/suite.log" | tail -1
echo "== done in ${SECONDS}s"
