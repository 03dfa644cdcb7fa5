#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-seventh session, issue 9). table27f.sh's prefill rows ran once
# each; random operands move those rows by up to 10% between passes (twenty-second session). Here ours and
# torch._grouped_mm alternate three times at T = 1024, 8192 with random weights. Logs in $OUT/prefill27g.tgz.
set -uo pipefail
out=/tmp/moe-prefill27g; mkdir -p "$out"
trap 'tar czf "$OUT/prefill27g.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
budget=${PREFILL_BUDGET_S:-200}
for pass in 1 2 3; do
  limit=$(( budget - SECONDS )); [ $limit -gt 25 ] || { echo "== pass $pass skipped (${SECONDS}s)"; break; }
  MOE_SWEEP_WEIGHTS=random MOE_SWEEP_TOKENS=1024,8192 timeout $limit $B sweep grouped_gemm --device cuda:0 > "$out/ours-$pass.log" 2>&1
  echo "== ours $pass: exit $? (${SECONDS}s)"; grep -E "^\| [a-z].*T=8192" "$out/ours-$pass.log" | cut -c1-100
  limit=$(( budget - SECONDS )); [ $limit -gt 15 ] || { echo "== torch $pass skipped (${SECONDS}s)"; break; }
  (cd bench/reference && MOE_SWEEP_WEIGHTS=random MOE_SWEEP_TOKENS=1024,8192 PYTHONUNBUFFERED=1 OUT="$out/torch-$pass" \
    timeout $limit python3 grouped_gemm.py > "$out/torch-$pass.log" 2>&1)
  echo "== torch $pass: exit $? (${SECONDS}s)"; grep -E "^\| [a-z].*T=8192" "$out/torch-$pass.log" | cut -c1-100
done
echo "== done in ${SECONDS}s"
