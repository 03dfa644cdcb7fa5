"""PyTorch reference for the `token_ops` sweep (bench/Kernels/TokenOpsSweep.cs): the op chains a user
would write instead of our kernels, on the same shapes, timed the same way (median of CUDA-event-timed
runs after warm-up; routing replayed from a CUDA graph because launch overhead dominates it).

    python3 bench/reference/token_ops.py            # prints the table; writes $OUT/token_ops-torch.json if OUT is set
    TOKEN_OPS_ROUTING_ONLY=1 python3 bench/reference/token_ops.py   # the routing rows alone

Routing rows come four ways: the chain alone and with the tokens-per-expert counts our op also returns ("+counts"),
each replayed from a graph and launched eagerly (what a PyTorch user runs by default).
"""
import json
import os
import statistics

import torch

DEVICE = "cuda"
torch.manual_seed(1234)


def median_us(fn, warmup=5, samples=30, inner=10, graph=False):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    run = fn
    if graph:
        g = torch.cuda.CUDAGraph()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fn()  # warm-up on the capture stream, as torch.cuda.graphs asks
        torch.cuda.current_stream().wait_stream(side)
        with torch.cuda.graph(g):
            for _ in range(inner):
                fn()
        run = g.replay
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(samples):
        start.record()
        if graph:
            run()
        else:
            for _ in range(inner):
                run()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3 / inner)
    return statistics.median(times)


def softmax_topk(logits, k):
    weights, ids = torch.topk(torch.softmax(logits, dim=-1, dtype=torch.float32), k, dim=-1)
    return ids, weights / weights.sum(dim=-1, keepdim=True)


def deepseek_grouped(logits, bias, k, n_group, topk_group, scale):
    tokens, experts = logits.shape
    scores = logits.sigmoid()
    choice = scores + bias
    group_scores = choice.view(tokens, n_group, -1).topk(2, dim=-1)[0].sum(dim=-1)
    group_idx = torch.topk(group_scores, topk_group, dim=-1, sorted=False)[1]
    group_mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1)
    score_mask = group_mask.unsqueeze(-1).expand(tokens, n_group, experts // n_group).reshape(tokens, -1)
    masked = choice.masked_fill(~score_mask.bool(), float("-inf"))
    ids = torch.topk(masked, k, dim=-1, sorted=False)[1]
    weights = scores.gather(1, ids)
    weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
    return ids, weights * scale


def random_ids(tokens, k, experts):
    return torch.rand(tokens, experts, device=DEVICE).topk(k, dim=-1)[1].to(torch.int32)


def main():
    name = torch.cuda.get_device_name()
    bandwidth = 4.2e12 if "H200" in name else 3.0e12
    rows = []

    def add(op, shape, us, nbytes, note=""):
        rows.append({"Name": op, "Shape": shape, "Us": us, "GBps": nbytes / (us * 1e-6) / 1e9,
                     "FloorUs": nbytes / bandwidth * 1e6, "Note": note})

    for op, experts, k, grouped in [("routing softmax", 8, 2, False), ("routing softmax", 128, 8, False),
                                    ("routing deepseek grouped", 256, 8, True)]:
        for tokens in (1, 128, 1024, 8192):
            logits = torch.empty(tokens, experts, device=DEVICE).uniform_(-4, 4)
            bias = torch.empty(experts, device=DEVICE).uniform_(-0.5, 0.5)
            if grouped:
                fn = lambda: deepseek_grouped(logits, bias, k, 8, 4, 2.5)
            else:
                fn = lambda: softmax_topk(logits, k)
            ones = torch.ones(tokens * k, device=DEVICE, dtype=torch.int32)
            # Our op also returns the tokens per expert; the chain that gives all of it adds them up (scatter_add_:
            # torch.bincount reads its maximum back to the host, which a graph cannot capture).
            with_counts = lambda: with_expert_counts(fn, experts, ones)
            nbytes = 4 * tokens * experts + 8 * tokens * k + 4 * experts
            shape = f"T={tokens} E={experts} k={k} f32"
            add(op, shape, median_us(fn, graph=True), nbytes, "graph")
            add(op + " +counts", shape, median_us(with_counts, graph=True), nbytes, "graph")
            add(op, shape, median_us(fn), nbytes, "eager")
            add(op + " +counts", shape, median_us(with_counts), nbytes, "eager")
    if os.environ.get("TOKEN_OPS_ROUTING_ONLY") == "1":
        return finish(name, rows)

    tokens, experts = 8192, 256
    for hidden in (4096, 7168):
        for k in (2, 8):
            slots = tokens * k
            ids = random_ids(tokens, k, experts)
            x = torch.randn(tokens, hidden, device=DEVICE, dtype=torch.bfloat16)
            shape = f"T={tokens} H={hidden} k={k} bf16"

            def permute():
                order = ids.view(-1).argsort(stable=True)
                return x.index_select(0, order // k)

            add("permute (argsort + index_select)", shape, median_us(permute, inner=5),
                2 * 2 * slots * hidden + 4 * slots * 3)

            order = ids.view(-1).argsort(stable=True)
            token_of_row = order // k
            expert_out = x.index_select(0, token_of_row)
            weight_of_row = torch.rand(slots, device=DEVICE).view(-1)[order]
            out = torch.empty(tokens, hidden, device=DEVICE, dtype=torch.bfloat16)

            def combine():
                out.zero_()
                out.index_add_(0, token_of_row, expert_out * weight_of_row.unsqueeze(1).to(torch.bfloat16))

            add("combine (index_add_)", shape, median_us(combine, inner=5),
                2 * slots * hidden + 2 * tokens * hidden + 8 * slots)

    for m, inter, label in [(16384, 14336, "Mixtral T=8192 k=2"), (65536, 2048, "DeepSeek-V3 T=8192 k=8")]:
        gate_up = torch.randn(m, 2 * inter, device=DEVICE, dtype=torch.bfloat16)
        fn = lambda: torch.nn.functional.silu(gate_up[:, :inter]) * gate_up[:, inter:]
        add("silu_and_mul", f"M={m} I={inter} bf16", median_us(fn, inner=5), 2 * 3 * m * inter, label)

    finish(name, rows)


def with_expert_counts(route, experts, ones):
    ids, weights = route()
    counts = torch.zeros(experts, device=DEVICE, dtype=torch.int32).scatter_add_(0, ids.reshape(-1), ones)
    return ids, weights, counts


def finish(name, rows):
    print(f"## token_ops (PyTorch {torch.__version__}) on {name}")
    print(f"| {'name':<34} | {'shape':<26} | {'time (us)':>10} | {'GB/s':>8} | {'floor (us)':>10} | note")
    for r in rows:
        print(f"| {r['Name']:<34} | {r['Shape']:<26} | {r['Us']:>10.2f} | {r['GBps']:>8.0f} | {r['FloorUs']:>10.2f} | {r['Note']}")
    out_dir = os.environ.get("OUT")
    if out_dir:
        with open(os.path.join(out_dir, "token_ops-torch.json"), "w") as f:
            json.dump({"device": name, "torch": torch.__version__, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
