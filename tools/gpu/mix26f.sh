#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-sixth session). The four short calls that followed mix26d.sh on
# the same warm machine and the same build (18f3131), run as inline commands and gathered here as they ran:
#   tests26e: the Runtime namespace, then the wgmma and F64 classes, under MOE_GROUPED_GEMM_WGMMA_MIN_ROWS=16 (mix26d.sh's
#             test line filtered by namespace and class at once, which selects nothing);
#   mix26f:   Mixtral-8x7B's layer at T = 5, 6, 7, min 64 (the old default) against min 9, twice;
#   tests26g, tests26h: the Runtime namespace, then GroupedGemmTests with MoeDecodeTests, under min 12.
# Usage: mix26f.sh tests16|rows|tests12. Logs in $OUT/<name>.tgz.
set -uo pipefail
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
SECONDS=0
case "${1:-}" in
  tests16)
    export MOE_GROUPED_GEMM_WGMMA_MIN_ROWS=16; mkdir -p /tmp/t
    timeout 150 $T -namespace MoeRuntime.Tests.Runtime > /tmp/t/rt.log 2>&1; echo "rt exit $? ${SECONDS}s"
    grep -E "\[FAIL\]" -A 10 /tmp/t/rt.log | head -30; grep Total: /tmp/t/rt.log
    timeout $((330 - SECONDS)) $T -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests -class MoeRuntime.Tests.Kernels.GroupedGemmTests > /tmp/t/w.log 2>&1
    echo "wgmma exit $? ${SECONDS}s"; grep -E "\[FAIL\]" -A 10 /tmp/t/w.log | head -30; grep Total: /tmp/t/w.log
    tar czf "$OUT/tests26e.tgz" -C /tmp/t . ;;
  rows)
    mkdir -p /tmp/m
    for i in 1 2; do for v in 64 9; do
      MOE_GROUPED_GEMM_WGMMA_MIN_ROWS=$v timeout 45 $M bench layer --preset mixtral-8x7b --tokens 5,6,7 --layers 4 > /tmp/m/min$v.$i.log 2>&1
      echo "== min $v ($i): exit $? (${SECONDS}s)"; grep -E "^mixtral" /tmp/m/min$v.$i.log
    done; done
    tar czf "$OUT/mix26f.tgz" -C /tmp/m . ;;
  tests12)
    export MOE_GROUPED_GEMM_WGMMA_MIN_ROWS=12; mkdir -p /tmp/t12 /tmp/t12b
    timeout 90 $T -namespace MoeRuntime.Tests.Runtime > /tmp/t12/rt.log 2>&1; echo "rt exit $? ${SECONDS}s"
    grep -E "\[FAIL\]" -A 10 /tmp/t12/rt.log | head -30; grep Total: /tmp/t12/rt.log; tar czf "$OUT/tests26g.tgz" -C /tmp/t12 .
    timeout 120 $T -class MoeRuntime.Tests.Kernels.GroupedGemmTests -class MoeRuntime.Tests.Kernels.MoeDecodeTests > /tmp/t12b/g.log 2>&1
    echo "exit $? ${SECONDS}s"; grep -E "\[FAIL\]" -A 10 /tmp/t12b/g.log | head -30; grep Total: /tmp/t12b/g.log; tar czf "$OUT/tests26h.tgz" -C /tmp/t12b . ;;
  *) echo "usage: mix26f.sh tests16|rows|tests12" >&2; exit 2 ;;
esac
