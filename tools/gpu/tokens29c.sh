#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-ninth session, issue 3). The token ops on main beside PyTorch in
# one call: torch's chains first (bench/reference/token_ops.py: routing graph-replayed and eager, with and without counts;
# permute, combine, SiLU-and-mul), then `sweep token_ops` paired with that JSON (--reference). Logs in $OUT/tokens29c.tgz.
set -uo pipefail
out=/tmp/moe-tokens29c; mkdir -p "$out"
trap 'tar czf "$OUT/tokens29c.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
(cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out" timeout 150 python3 token_ops.py > "$out/torch-token_ops.log" 2>&1)
echo "== torch token ops: exit $? (${SECONDS}s)"
ref="$out/token_ops-torch.json"; [ -f "$ref" ] || ref=
timeout 150 $B sweep token_ops --device cuda:0 --json "$out/ours-token_ops.json" ${ref:+--reference "$ref"} > "$out/ours-token_ops.log" 2>&1
echo "== sweep token_ops: exit $? (${SECONDS}s)"
sed -n '/speed-up/,$p' "$out/ours-token_ops.log" | cut -c1-170
grep -E "graph node floor" "$out/ours-token_ops.log" | cut -c1-150
echo "== done in ${SECONDS}s"
