#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: the sixth session's third check call, one GPU per script
# (CUDA_VISIBLE_DEVICES: each script's cuda:0), the .NET runtime unpacked once before they start.
#   GPU 0: tools/gpu/bulkdiag-check.sh                         (the bulk-copy GEMV's knob matrix)
#   GPU 1: tools/gpu/qwenmodel-check.sh, then route8-check.sh  (host phase sweep + calibration + validation; the
#                                                               token-per-thread softmax routing)
# Logs in $OUT/mid6c.tgz and the scripts' own tarballs; each script's summary on stdout.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-mid6c; mkdir -p "$out"
trap 'tar czf "$OUT/mid6c.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
SECONDS=0
bash .gpu/run.sh true
CUDA_VISIBLE_DEVICES=0 timeout 300 bash tools/gpu/bulkdiag-check.sh > "$out/bulkdiag.out" 2>&1 &
p0=$!
(CUDA_VISIBLE_DEVICES=1 timeout 220 bash tools/gpu/qwenmodel-check.sh > "$out/qwenmodel.out" 2>&1
 echo "== qwenmodel-check: exit $? (${SECONDS}s)" >> "$out/gpu1.log"
 CUDA_VISIBLE_DEVICES=1 timeout 200 bash tools/gpu/route8-check.sh > "$out/route8.out" 2>&1
 echo "== route8-check: exit $? (${SECONDS}s)" >> "$out/gpu1.log") &
p1=$!
wait $p0; echo "== bulkdiag-check: exit $? (${SECONDS}s)"
wait $p1; cat "$out/gpu1.log"
echo "######## bulkdiag"; tail -c 4200 "$out/bulkdiag.out"; echo
echo "######## qwenmodel"; tail -c 3800 "$out/qwenmodel.out"; echo
echo "######## route8"; tail -c 3300 "$out/route8.out"
