#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh. Written in the twenty-eighth session. Not run as a
# whole: cold29d.sh ran its test classes in the twenty-ninth, and its sustain rows did not run.
# The wgmma, trace and cluster test classes (the graph-replay test of the first two now share one helper, unrun on a
# GPU), then Mixtral-8x7B T = 8192 down and gate_up after 3 s of each call (MOE_SWEEP_SUSTAIN_MS=3000), ours and torch
# alternating, to repeat sustain28h.sh on another machine. Logs in $OUT/final29b.tgz.
set -uo pipefail
out=/tmp/moe-final29b; mkdir -p "$out"
trap 'tar czf "$OUT/final29b.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
timeout 300 $T -class $K.GroupedGemmWgmmaTests -class $K.GroupedGemmWgmmaClusterTests -class $K.GroupedGemmWgmmaTraceTests > "$out/wgmma-tests.log" 2>&1
echo "== wgmma classes: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 14 "$out/wgmma-tests.log" | head -60; grep -E "Total:" "$out/wgmma-tests.log" | tail -1
export MOE_SWEEP_SUSTAIN_MS=3000 MOE_SWEEP_CLOCKS=1 MOE_SWEEP_WEIGHTS=random MOE_SWEEP_MODELS=mixtral MOE_SWEEP_TOKENS=8192
run() { local name=$1; shift; [ $SECONDS -lt 480 ] || { echo "== $name skipped at ${SECONDS}s"; return; }
  "$@" > "$out/$name.log" 2>&1; local rc=$?
  echo "== $name: exit $rc (${SECONDS}s)"; grep -E "^\| mixtral" "$out/$name.log" | sed -E 's/ +\|/ |/g' | cut -c1-200; }
ours() { run ours-$1.$2 env MOE_SWEEP_CALLS=$1 timeout 40 $B sweep grouped_gemm --device cuda:0; }
torch() { run torch-$1.$2 bash -c "cd bench/reference && MOE_SWEEP_CALLS=$1 timeout 40 python3 grouped_gemm.py"; }
ours down 1; torch down 1; torch gate_up 1; ours gate_up 1
torch down 2; ours down 2; ours gate_up 2; torch gate_up 2
echo "== done in ${SECONDS}s"
