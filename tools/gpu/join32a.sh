#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (thirty-second session, first call). The shared expert as routed expert E
# of the grouped GEMMs (SharedExpertJoin, default on): DeepSeek-V3 4 layers cycled, joined against separate alternating in
# one process (MOE_SWEEP_SHARED_AB=1) with the prefix rows, T = 64, 128, 1024; then the Runtime namespace (first GPU run of
# last session's MoeLayer.ForwardThrough and of this session's join); then ours (`moe bench layer`) and PyTorch's
# composite one process a side, alternating, T = 16, 128. Logs in $OUT/join32a.tgz.
# The join measured no faster and was removed (revert f603ccd); this script runs on 7a196af, where it lived.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-join32a; mkdir -p "$out"
trap 'tar czf "$OUT/join32a.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
MOE_SWEEP_SHARED_AB=1 MOE_SWEEP_PREFIXES=1 MOE_SWEEP_LAYERS=4 MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=64,128,1024 \
  timeout 150 $B sweep moe_layer --device cuda:0 > "$out/ab.log" 2>&1
echo "== A/B sweep: exit $? (${SECONDS}s)"; grep -E "^\| deepseek" "$out/ab.log" | sed -E 's/ +\|/ |/g; s/ H=7168 I=2048 E=256 k=8//' | cut -c1-170
timeout 150 $T -namespace MoeRuntime.Tests.Runtime > "$out/tests.log" 2>&1
echo "== Runtime tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 10 "$out/tests.log" | head -30; grep -E "Total:" "$out/tests.log" | tail -1
grep -cE "SharedExpertJoinTests.*\[PASS\]|SharedExpertJoinTests" "$out/tests.log"
ours() { [ $SECONDS -lt 400 ] || { echo "== ours $1 skipped"; return; }
         timeout 90 $M bench layer --preset deepseek-v3 --tokens 16,128 --layers 4 > "$out/ours-$1.log" 2> "$out/ours-$1.err"
         echo "== ours $1: exit $? (${SECONDS}s)"; grep -hE "^(preset|deepseek)" "$out/ours-$1.log"; }
torch() { [ $SECONDS -lt 420 ] || { echo "== torch $1 skipped"; return; }
          (cd bench/reference && PYTHONUNBUFFERED=1 MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=16,128 MOE_SWEEP_LAYERS=4 timeout 100 python3 moe_layer.py > "$out/torch-$1.log" 2>&1)
          echo "== torch $1: exit $? (${SECONDS}s)"; grep -vE "^#" "$out/torch-$1.log" | cut -c1-200 | tail -4; }
ours a; torch a; ours b; torch b
echo "== done in ${SECONDS}s"
