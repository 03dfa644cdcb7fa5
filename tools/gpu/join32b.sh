#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (thirty-second session). join32a.sh: with the shared expert joined to the
# routed GEMMs, DeepSeek-V3 T = 64, 128, 1024 read the same as separate (alternating in one process, within 15 us).
# Here the prefill sizes: T = 1024 again (4 layers cycled) and T = 8192 (one layer), joined against separate
# alternating; then the Runtime and Cli namespaces (the view test's SiLU placement fixed). Logs in $OUT/join32b.tgz.
# The join measured no faster and was removed (revert f603ccd); this script runs on 7a196af, where it lived.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-join32b; mkdir -p "$out"
trap 'tar czf "$OUT/join32b.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
ab() { MOE_SWEEP_SHARED_AB=1 MOE_SWEEP_LAYERS=$2 MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=$1 \
         timeout 150 $B sweep moe_layer --device cuda:0 > "$out/ab-$1.log" 2>&1
       echo "== A/B T=$1, $2 layers: exit $? (${SECONDS}s)"; grep -E "^\| deepseek" "$out/ab-$1.log" | sed -E 's/ +\|/ |/g; s/ H=7168 I=2048 E=256 k=8//' | cut -c1-150; }
ab 1024 4; ab 8192 1
timeout 200 $T -namespace MoeRuntime.Tests.Runtime -namespace MoeRuntime.Tests.Cli > "$out/tests.log" 2>&1
echo "== Runtime + Cli tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 10 "$out/tests.log" | head -30; grep -E "Total:" "$out/tests.log" | tail -1
echo "== done in ${SECONDS}s"
