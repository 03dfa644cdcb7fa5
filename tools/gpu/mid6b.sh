#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: the sixth session's second check call.
#   tools/gpu/epstart-check.sh     (2 GPUs: the EP experts enqueued step by step across ranks, the scale model's validation)
#   tools/gpu/skinnyfold-check.sh  (GPU 0: the skinny split-K reducing in its kernel; mid6.sh's run lost it to two
#                                   processes unpacking the .NET runtime at once, so the runtime is unpacked first here)
# Logs in $OUT/mid6b.tgz and the scripts' own tarballs; summaries on stdout.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-mid6b; mkdir -p "$out"
trap 'tar czf "$OUT/mid6b.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
SECONDS=0
bash .gpu/run.sh true
timeout 250 bash tools/gpu/epstart-check.sh > "$out/epstart.out" 2>&1
echo "== epstart-check: exit $? (${SECONDS}s)"; tail -c 6500 "$out/epstart.out"; echo
CUDA_VISIBLE_DEVICES=0 timeout $((570 - SECONDS)) bash tools/gpu/skinnyfold-check.sh > "$out/skinnyfold.out" 2>&1
echo "== skinnyfold-check: exit $? (${SECONDS}s)"; tail -c 4800 "$out/skinnyfold.out"
