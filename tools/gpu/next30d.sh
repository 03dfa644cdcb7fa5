#!/usr/bin/env bash
# GPU machine, one H200, fresh (empty kernel cache), after tools/gpu/pack.sh (thirtieth session, last call). permute.cu
# now builds one group a compile, and the CPU twins of combine and SiLU-and-mul changed (the CUDA tests compare against
# them). `moe demo` cold and Qwen3-30B-A3B's bf16 layer cold with their compile lines; the whole suite except the wgmma,
# cluster and trace classes (they ran in next30a.sh, and nothing they cover changed); then, time allowing, DeepSeek-V3
# T = 128's phases with 4 layers cycled, and final29b.sh's sustain rows (issue 9: Mixtral-8x7B T = 8192 down and gate_up
# after 3 s of each call, ours and torch alternating). Logs in $OUT/next30d.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-next30d; mkdir -p "$out"
trap 'tar czf "$OUT/next30d.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
timeout 60 $M demo > "$out/demo-cold.log" 2> "$out/demo-cold.err"; echo "== demo cold: exit $? (${SECONDS}s)"
grep -E "^moe: compil" "$out/demo-cold.err"; grep -E "pass|fail" "$out/demo-cold.log" | head -12
start=$SECONDS; timeout 100 $M bench layer --preset qwen3-30b-a3b --tokens 1,16,128,1024,8192 --layers 4 > "$out/qwen3.log" 2> "$out/qwen3.err"
echo "== qwen3 layer cold: exit $? ($((SECONDS - start))s)"; grep -E "^moe: compil" "$out/qwen3.err"; grep -hE "^(preset|qwen3)" "$out/qwen3.log"
timeout $((560 - SECONDS - 120)) $T -class- $K.GroupedGemmWgmmaTests -class- $K.GroupedGemmWgmmaClusterTests -class- $K.GroupedGemmWgmmaTraceTests > "$out/suite.log" 2>&1
echo "== suite: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 14 "$out/suite.log" | head -80; grep -E "Total:" "$out/suite.log" | tail -1
[ $SECONDS -lt 500 ] && { timeout 40 $M bench layer --preset deepseek-v3 --tokens 128 --layers 4 --phases > "$out/ds-phases.log" 2>&1
  echo "== deepseek phases: exit $? (${SECONDS}s)"; grep -vE "^moe:" "$out/ds-phases.log" | head -12; }
export MOE_SWEEP_SUSTAIN_MS=3000 MOE_SWEEP_CLOCKS=1 MOE_SWEEP_WEIGHTS=random MOE_SWEEP_MODELS=mixtral MOE_SWEEP_TOKENS=8192
run() { local name=$1; shift; [ $SECONDS -lt 540 ] || { echo "== $name skipped at ${SECONDS}s"; return; }
  "$@" > "$out/$name.log" 2>&1; local rc=$?
  echo "== $name: exit $rc (${SECONDS}s)"; grep -E "^\| mixtral" "$out/$name.log" | sed -E 's/ +\|/ |/g' | cut -c1-200; }
ours() { run ours-$1.$2 env MOE_SWEEP_CALLS=$1 timeout 30 $B sweep grouped_gemm --device cuda:0; }
torch() { run torch-$1.$2 bash -c "cd bench/reference && MOE_SWEEP_CALLS=$1 timeout 30 python3 grouped_gemm.py"; }
ours down 1; torch down 1; torch gate_up 1; ours gate_up 1
echo "== done in ${SECONDS}s"
