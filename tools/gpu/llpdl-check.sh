#!/usr/bin/env bash
# GPU machine, 2 GPUs (nvidia-h200-x2), after tools/gpu/pack.sh: issue 4, the LL AllReduce kernel (ll_allreduce.cu) as a
# programmatic dependent launch (its blocks placed while the kernel before it runs; moe_wait_prior_grid() first).
#   1. tests with dependent launch on (the default): LowLatencyAllReduceTests, LowLatencyVariantTests, AllReduceTests,
#      DependentLaunchTests;
#   2. moe bench allreduce, bf16, CUDA-graph timed, 1K..4M, twoshot/oneshot/nccl: MOE_PDL=1 (on), MOE_PDL=0 (off), twice
#      alternating (on, off, on, off), then two-shot with MOE_LL_LAZY_CYCLES=1024 and 2048 (on), and a table: us per call
#      per run, two-shot and one-shot over NCCL of the same run.
# Logs and CSVs in $OUT/llpdl.tgz. About 4.5 minutes. LLPDL_BUDGET (s) bounds it.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-llpdl; rm -rf "$out"; mkdir -p "$out"
trap 'tar czf "$OUT/llpdl.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
budget=${LLPDL_BUDGET:-290}
left() { echo $((budget - SECONDS)); }
totals() { grep -oE "Total: [0-9]+, Errors: [0-9]+, Failed: [0-9]+, Skipped: [0-9]+" "$1" | tail -1; }

echo "== llpdl: LL AllReduce as a dependent launch, 2 GPUs, bf16, CUDA graphs ($(date -u +%FT%TZ))"
timeout 110 $T -class MoeRuntime.Tests.Collectives.LowLatencyAllReduceTests -class MoeRuntime.Tests.Collectives.LowLatencyVariantTests \
  -class MoeRuntime.Tests.Collectives.AllReduceTests -class MoeRuntime.Tests.Accelerators.DependentLaunchTests > "$out/tests.log" 2>&1
echo "tests (dependent launch on): exit $?, $(totals "$out/tests.log") (${SECONDS}s)"
grep -E "\[FAIL\]" -A 4 "$out/tests.log" | cut -c1-300 | head -16

bench() { # label, MOE_PDL value, algorithms, largest size, more environment
  local label=$1 pdl=$2 algos=${3:-twoshot,oneshot,nccl} max=${4:-4M}; shift 4 2>/dev/null || shift $#
  [ "$(left)" -gt 15 ] || { echo "bench $label: skipped (time)"; return; }
  local limit=$(( $(left) < 45 ? $(left) : 45 ))
  env MOE_PDL=$pdl "$@" timeout $limit $M bench allreduce --devices cuda:0,cuda:1 --algo "$algos" --dtype bf16 --min 1K --max "$max" \
    --timing graph --csv "$out/bench-$label.csv" > "$out/bench-$label.log" 2>&1
  echo "bench $label (MOE_PDL=$pdl $*): exit $? (${SECONDS}s)"
}
bench on1 1; bench off1 0; bench on2 1; bench off2 0
# The lazy fence's budget (4096 SM cycles by default) shorter, dependent launch on: if a two-shot hop waits on it, these are faster.
bench lazy1k 1 twoshot,nccl 1M MOE_LL_LAZY_CYCLES=1024
bench lazy2k 1 twoshot,nccl 1M MOE_LL_LAZY_CYCLES=2048

files=()
for label in on1 off1 on2 off2 lazy1k lazy2k; do [ -s "$out/bench-$label.csv" ] && files+=("$out/bench-$label.csv"); done
if [ ${#files[@]} -gt 0 ]; then
  awk -F, '
    function human(b) { return b >= 1048576 ? b / 1048576 "M" : b / 1024 "K" }
    FNR == 1 { n = split(FILENAME, p, "/"); lab = p[n]; sub(/^bench-/, "", lab); sub(/\.csv$/, "", lab); if (!(lab in seenLab)) { seenLab[lab] = 1; labs[++nl] = lab }; next }
    {
      algo = tolower($1); a = algo == "twoshot" ? "2s" : algo == "oneshot" ? "1s" : algo
      if (!($4 in seenSize)) { seenSize[$4] = 1; sizes[++ns] = $4 }
      v = sprintf("%.2f", $6); if ($10 ~ /\(ll\)/) v = v "L"; if ($9 > 0) v = v " WRONG" $9
      cell[$4, lab, a] = v; t[$4, lab, a] = $6
    }
    END {
      print "== us per call (L: on LL) per run; 2s/N, 1s/N: over the same run'"'"'s NCCL (target two-shot <= 0.70)"
      printf "%5s", "size"; for (l = 1; l <= nl; l++) printf " | %-6s %9s %9s %9s %5s %5s", labs[l], "2s", "1s", "nccl", "2s/N", "1s/N"; print ""
      for (s = 1; s <= ns; s++) {
        printf "%5s", human(sizes[s])
        for (l = 1; l <= nl; l++) {
          z = sizes[s]; lb = labs[l]
          printf " | %-6s %9s %9s %9s", "", cell[z, lb, "2s"], cell[z, lb, "1s"], cell[z, lb, "nccl"]
          if (t[z, lb, "nccl"] > 0) printf " %5.2f %5.2f", t[z, lb, "2s"] / t[z, lb, "nccl"], t[z, lb, "1s"] / t[z, lb, "nccl"]; else printf " %5s %5s", "-", "-"
        }
        print ""
      }
    }' "${files[@]}"
fi
grep -hE "rror|xception" "$out"/bench-*.log | cut -c1-300 | head -6
echo "== done in ${SECONDS}s"
