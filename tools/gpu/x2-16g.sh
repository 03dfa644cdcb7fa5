#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: `moe demo` with the closing defaults, at its 64 tokens and at one token
# (the fused decode kernel on one GPU and on the TP ranks), every row checked against the CPU. Logs in $OUT/x2-16g.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-x2-16g; mkdir -p "$out"
trap 'tar czf "$OUT/x2-16g.tgz" -C "$out" .' EXIT
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
SECONDS=0
timeout 150 $M demo > "$out/demo.log" 2>&1; echo "== demo: exit $? (${SECONDS}s)"; grep -vE "^[0-9:]+ info" "$out/demo.log" | tail -30
timeout 150 $M demo --tokens 1 > "$out/demo1.log" 2>&1; echo "== demo --tokens 1: exit $? (${SECONDS}s)"; grep -vE "^[0-9:]+ info" "$out/demo1.log" | tail -30
