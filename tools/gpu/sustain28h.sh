#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-eighth session, issue 9). prefill28g.sh timed each call alone in
# its process: a row of ~200 ms, shorter than the power limit takes to settle. Here every row first runs its call back to
# back for 3 s (MOE_SWEEP_SUSTAIN_MS=3000, ours and torch alike), so both are timed at the clock the power limit allows
# under that call, as in a long prefill: Mixtral-8x7B T = 8192 down and gate_up on random weights, ours and
# torch._grouped_mm alternating, two rounds. Logs in $OUT/sustain28h.tgz.
set -uo pipefail
out=/tmp/moe-sustain28h; mkdir -p "$out"
trap 'tar czf "$OUT/sustain28h.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
export MOE_SWEEP_SUSTAIN_MS=3000 MOE_SWEEP_CLOCKS=1 MOE_SWEEP_WEIGHTS=random MOE_SWEEP_MODELS=mixtral MOE_SWEEP_TOKENS=8192
run() { local name=$1; shift; [ $SECONDS -lt 110 ] || { echo "== $name skipped at ${SECONDS}s"; return; }
  "$@" > "$out/$name.log" 2>&1; local rc=$?
  echo "== $name: exit $rc (${SECONDS}s)"; grep -E "^\| mixtral" "$out/$name.log" | sed -E 's/ +\|/ |/g' | cut -c1-200; }
ours() { run ours-$1.$2 env MOE_SWEEP_CALLS=$1 timeout 40 $B sweep grouped_gemm --device cuda:0; }
torch() { run torch-$1.$2 bash -c "cd bench/reference && MOE_SWEEP_CALLS=$1 timeout 40 python3 grouped_gemm.py"; }
ours down 1; torch down 1; torch gate_up 1; ours gate_up 1
torch down 2; ours down 2; ours gate_up 2; torch gate_up 2
echo "== done in ${SECONDS}s"
