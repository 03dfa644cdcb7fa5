#!/usr/bin/env bash
# GPU machine, one GPU (cuda:0), after tools/gpu/pack.sh: issue 3 (permute index phase, offsets folded into the scatter).
# PermuteTests (fused and three-kernel paths against each other, the CPU twin and the reference), TopKRoutingTests and
# MoeLayerTests with CUDA, then the token-ops sweep once (graph replays). The sweep has A/B rows for the shapes that take
# the fused path (T=8192 k=2): "permute indices only" / "permute (indices + gather)" (fused, the default) against
# "... 3-kernel" (the previous path, forced). Logs in $OUT/permute2.tgz. Summary: test totals and failures, then the
# permute rows (name, shape, us, % of the copy floor). About 2 minutes.
set -uo pipefail
out=/tmp/moe-permute2; mkdir -p "$out"
trap 'tar czf "$OUT/permute2.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1
timeout 150 $T -class MoeRuntime.Tests.Kernels.PermuteTests -class MoeRuntime.Tests.Kernels.TopKRoutingTests \
  -class MoeRuntime.Tests.Runtime.MoeLayerTests > "$out/tests.log" 2>&1; echo "tests: exit $?"
grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -40; grep -E "Total:" "$out/tests.log"
timeout 75 $B sweep token_ops --device cuda:0 --json "$out/sweep.json" > "$out/sweep.log" 2>&1
echo "sweep token_ops: exit $?"
grep -E "^\| permute" "$out/sweep.log" | awk -F'|' '{printf "%-34s %-26s %9s us  %s\n", $2, $3, $4, $8}' | sed 's/  */ /g'
