"""PyTorch reference for the `grouped_gemm` sweep: torch._grouped_mm, bf16, the same shapes and routing style.

gate_up: [T*k, H] x [E, 2I, H]^T and down: [T*k, I] x [E, H, I]^T at Mixtral-8x7B, Qwen3-30B-A3B and
DeepSeek-V3 shapes, T = 1, 16, 128, 1024, 8192. Each token draws k distinct experts uniformly (fixed seed);
rows are sorted by expert and `offs` holds the cumulative row ends (int32). Times are medians of
CUDA-event-timed runs after warm-up, replayed from a CUDA graph for T <= 128.
Prints a table; writes $OUT/grouped_gemm-torch.json when OUT is set. MOE_SWEEP_CLOCKS=1 adds each row's SM clock and
power as NVML read them through its timing (gpu_clocks.py), as our sweep's notes do.
"""
import json
import os
import time

import torch

import gpu_clocks

MODELS = [("mixtral-8x7b", 4096, 14336, 8, 2), ("qwen3-30b-a3b", 2048, 768, 128, 8), ("deepseek-v3", 7168, 2048, 256, 8)]
TOKENS = [1, 16, 128, 1024, 8192]


def wanted_tokens(tokens):
    """MOE_SWEEP_TOKENS=1,16 keeps those token counts, as our sweeps do (unset: all)."""
    value = os.environ.get("MOE_SWEEP_TOKENS", "").strip()
    return not value or str(tokens) in [v.strip() for v in value.split(",")]


def wanted_model(name):
    """MOE_SWEEP_MODELS=deepseek,mixtral keeps models whose name starts with one of the prefixes (unset: all)."""
    value = os.environ.get("MOE_SWEEP_MODELS", "").strip()
    return not value or any(name.lower().startswith(v.strip().lower()) for v in value.split(",") if v.strip())


def wanted_call(call):
    """MOE_SWEEP_CALLS=down keeps those calls (gate_up, down), as our sweep does (unset: all)."""
    value = os.environ.get("MOE_SWEEP_CALLS", "").strip()
    wanted = [v.strip() for v in value.split(",") if v.strip()]
    return not wanted or call in wanted or (call == "gate_up" and "gate_up+silu" in wanted)


def routing_offsets(tokens, top_k, experts, seed):
    generator = torch.Generator().manual_seed(seed)
    # k distinct experts per token: the top-k of uniform random scores is a uniform draw without replacement.
    picks = torch.rand(tokens, experts, generator=generator).topk(top_k, dim=1).indices.flatten()
    counts = torch.bincount(picks, minlength=experts)
    return torch.cumsum(counts, 0).to(torch.int32), int((counts > 0).sum())


def sustain(fn):
    """MOE_SWEEP_SUSTAIN_MS=N runs the call back to back for N ms before it is timed, as our sweep does: the row is
    timed at the clock the power limit allows under that call, whatever ran before it."""
    ms = int(os.environ.get("MOE_SWEEP_SUSTAIN_MS", "0") or 0)
    start = time.perf_counter()
    while (time.perf_counter() - start) * 1e3 < ms:
        for _ in range(10):
            fn()
        torch.cuda.synchronize()


def median_ms(fn, graph, inner):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    sustain(fn)
    if graph:
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for _ in range(inner):
                fn()
        run = g.replay
    else:
        def run():
            for _ in range(inner):
                fn()
    run()
    torch.cuda.synchronize()
    times = []
    for _ in range(20):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / inner)
    return sorted(times)[len(times) // 2]


# MOE_SWEEP_WEIGHTS=random: random expert weights instead of constants (a compute-bound call draws more power on them).
RANDOM_WEIGHTS = os.environ.get("MOE_SWEEP_WEIGHTS", "constant").strip() == "random"


def main():
    device = torch.device("cuda")
    name = torch.cuda.get_device_name()
    bandwidth = 4.2e12 if "H200" in name else 3.0e12
    rows_out = []
    sampler = gpu_clocks.ClockSampler() if gpu_clocks.requested() else None
    print(f"## grouped_gemm torch._grouped_mm on {name}")
    print(f"| {'name':<28} | {'shape':<34} | {'time (us)':>10} | {'GB/s':>8} | {'TFLOP/s':>8} | {'floor (us)':>10} | {'of floor':>8}")
    for model, h, i, e, k in [m for m in MODELS if wanted_model(m[0])]:
        gate_up = torch.full((e, 2 * i, h), 0.01, dtype=torch.bfloat16, device=device)
        down = torch.full((e, h, i), -0.02, dtype=torch.bfloat16, device=device)
        if RANDOM_WEIGHTS:  # uniform in +-1/sqrt(fan-in), as the layer bench's weights; an expert at a time
            for j in range(e):
                gate_up[j].uniform_(-h ** -0.5, h ** -0.5)
                down[j].uniform_(-i ** -0.5, i ** -0.5)
        for tokens in [t for t in TOKENS if wanted_tokens(t)]:
            rows = tokens * k
            offsets, active = routing_offsets(tokens, k, e, 1234 + tokens)
            offsets = offsets.to(device)
            hidden = torch.rand(rows, h, device=device).mul_(2).sub_(1).to(torch.bfloat16)
            inner = torch.rand(rows, i, device=device).mul_(2).sub_(1).to(torch.bfloat16)
            graph = tokens <= 128
            shape = f"T={tokens} rows={rows} active={active}"
            for call, x, w, n, kk in (("gate_up", hidden, gate_up, 2 * i, h), ("down", inner, down, h, i)):
                if not wanted_call(call):
                    continue
                label = f"{model} {call}"
                wt = w.transpose(-2, -1)
                if sampler is not None:
                    sampler.start(torch.cuda.current_device())
                ms = median_ms(lambda: torch._grouped_mm(x, wt, offs=offsets), graph, 20 if graph else 3)
                note = sampler.stop() if sampler is not None else ""
                weight_bytes = active * n * kk * 2
                nbytes = weight_bytes + rows * kk * 2 + rows * n * 2
                flops = 2.0 * rows * n * kk
                floor_ms = max(weight_bytes / bandwidth, flops / 799e12) * 1e3
                gbps, tflops = nbytes / (ms * 1e-3) / 1e9, flops / (ms * 1e-3) / 1e12
                print(f"| {label:<28} | {shape:<34} | {ms * 1e3:>10.2f} | {gbps:>8.0f} | {tflops:>8.1f} | {floor_ms * 1e3:>10.2f} | {floor_ms / ms:>8.0%}"
                      + (f" | {note}" if note else ""))
                rows_out.append(dict(name=label, shape=shape, ms=ms, gbps=gbps, tflops=tflops, floor_ms=floor_ms, note=note))
        del gate_up, down
        torch.cuda.empty_cache()
    if os.environ.get("OUT"):
        os.makedirs(os.environ["OUT"], exist_ok=True)  # a folder the caller named but did not make
        with open(os.path.join(os.environ["OUT"], "grouped_gemm-torch.json"), "w") as f:
            json.dump(dict(device=name, rows=rows_out), f, indent=2)


if __name__ == "__main__":
    main()
