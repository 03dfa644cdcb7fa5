"""PyTorch reference for the `dense_gemm` sweep: F.linear (cuBLAS), bf16 operands, at the MoE layer's dense shapes.

router [T, H] x [E, H]^T (bf16 out: torch has no bf16 x bf16 -> f32 linear; ours writes F32 logits), shared
gate_up [T, H] x [2I, H]^T followed by SiLU-and-mul, shared down [T, I] x [H, I]^T, T = 1, 16, 128, 1024.
Times are medians of CUDA-event-timed runs, replayed from a CUDA graph for T <= 128.
Prints a table; writes $OUT/dense_gemm-torch.json when OUT is set.
"""
import json
import os

import torch
import torch.nn.functional as F

from grouped_gemm import median_ms

CALLS = [("deepseek-v3 router", 256, 7168, False), ("deepseek-v3 shared gate_up+silu", 4096, 7168, True),
         ("deepseek-v3 shared down", 7168, 2048, False), ("qwen3-30b-a3b router", 128, 2048, False),
         ("mixtral-8x7b router", 8, 4096, False)]
TOKENS = [1, 16, 128, 1024]


def main():
    device = torch.device("cuda")
    name = torch.cuda.get_device_name()
    bandwidth = 4.2e12 if "H200" in name else 3.0e12
    rows_out = []
    print(f"## dense_gemm torch F.linear on {name}")
    print(f"| {'name':<32} | {'shape':<24} | {'time (us)':>10} | {'floor (us)':>10} | {'of floor':>8}")
    for label, n, k, fused in CALLS:
        w = torch.full((n, k), 0.01, dtype=torch.bfloat16, device=device)
        for tokens in TOKENS:
            x = torch.rand(tokens, k, device=device).mul_(2).sub_(1).to(torch.bfloat16)
            if fused:
                def fn():
                    gate, up = F.linear(x, w).chunk(2, dim=-1)
                    return F.silu(gate) * up
            else:
                def fn():
                    return F.linear(x, w)
            graph = tokens <= 128
            ms = median_ms(fn, graph, 20 if graph else 3)
            floor_ms = max(n * k * 2 / bandwidth, 2.0 * tokens * n * k / 799e12) * 1e3
            shape = f"T={tokens} N={n} K={k}"
            print(f"| {label:<32} | {shape:<24} | {ms * 1e3:>10.2f} | {floor_ms * 1e3:>10.2f} | {floor_ms / ms:>8.0%}")
            rows_out.append(dict(name=label, shape=shape, ms=ms, floor_ms=floor_ms))
    if os.environ.get("OUT"):
        os.makedirs(os.environ["OUT"], exist_ok=True)  # a folder the caller named but did not make
        with open(os.path.join(os.environ["OUT"], "dense_gemm-torch.json"), "w") as f:
            json.dump(dict(device=name, rows=rows_out), f, indent=2)


if __name__ == "__main__":
    main()
