"""PyTorch reference for `moe bench layer`: one MoE layer as a composite of PyTorch ops, bf16, random weights.

Per forward: router logits = x @ gate^T (f32), softmax top-k renormalised (Mixtral, Qwen3) or DeepSeek-V3's
sigmoid + correction bias + group-limited top-k (8 groups, top 4, renormalised, x2.5); stable argsort of the
expert ids, index_select gather, torch._grouped_mm gate_up, SiLU(gate) * up, torch._grouped_mm down,
index_add_ weighted un-permute in f32, + DeepSeek's shared expert. Presets and token counts as the C# bench:
mixtral-8x7b (H 4096, I 14336, E 8, k 2), qwen3-30b-a3b (H 2048, I 768, E 128, k 8),
deepseek-v3 (H 7168, I 2048, E 256, k 8, one shared expert); T = 1, 16, 128, 1024, 8192.
Times: median of 20 CUDA-event-timed forwards after warm-up; for T <= 128 also replayed from a CUDA graph, the eager and
graph samples alternating.
Floor: active-weight bytes (router + distinct experts the routing hit + shared) / copy bandwidth.
MOE_LAYER_ROUTING=FOLDER takes the hidden states, routers and biases from the files `moe bench layer` wrote there
(MOE_BENCH_LAYER_ROUTING), so both sides route the same tokens to the same experts and stream the same bytes.
Prints a table; writes $OUT/moe_layer-torch.json when OUT is set.
"""
import json
import os

import torch
import torch.nn.functional as F

from grouped_gemm import wanted_model

PRESETS = {
    "mixtral-8x7b": dict(h=4096, i=14336, e=8, k=2, deepseek=False, shared=0),
    "qwen3-30b-a3b": dict(h=2048, i=768, e=128, k=8, deepseek=False, shared=0),
    "deepseek-v3": dict(h=7168, i=2048, e=256, k=8, deepseek=True, shared=2048),
}
TOKENS = [1, 16, 128, 1024, 8192]


def listed_tokens():
    """MOE_SWEEP_TOKENS's counts as listed (any T, as the C# layer sweep takes them); unset: TOKENS."""
    value = os.environ.get("MOE_SWEEP_TOKENS", "").strip()
    return [int(v) for v in value.split(",") if v.strip()] if value else TOKENS
GROUPS, TOPK_GROUPS, SCALE = 8, 4, 2.5  # DeepSeek-V3 routing: n_group, topk_group, routed_scaling_factor



def random_weights(p, device):
    h, i, e = p["h"], p["i"], p["e"]

    def uniform(shape, fan_in):
        bound = fan_in ** -0.5
        return torch.empty(shape, dtype=torch.bfloat16, device=device).uniform_(-bound, bound)

    w = dict(router=uniform((e, h), h), gate_up=uniform((e, 2 * i, h), h), down=uniform((e, h, i), i))
    if p["deepseek"]:
        w["bias"] = torch.empty(e, device=device).uniform_(-0.1, 0.1)
    if p["shared"]:
        w["shared_gate_up"] = uniform((2 * p["shared"], h), h)
        w["shared_down"] = uniform((h, p["shared"]), p["shared"])
    return w


def shared_routing(preset, tokens, layers, device):
    """MOE_LAYER_ROUTING=FOLDER: the C# bench's hidden states [T, H] for this preset and T, and each layer's router and
    bias put into `layers`; returns (hidden, the experts the C# routing hit, mean over the layers). None when unset.
    Two random draws of the inputs and routers differ in the experts they hit (DeepSeek-V3 T = 16: 73 against 80 on
    average, 9% of the bytes), so a comparison of times needs the same draw on both sides."""
    folder = os.environ.get("MOE_LAYER_ROUTING", "").strip()
    if not folder:
        return None
    path = os.path.join(folder, f"{preset}-T{tokens}-routing.safetensors")
    if not os.path.exists(path):
        raise SystemExit(f"MOE_LAYER_ROUTING={folder}: no {path}; run `moe bench layer` with MOE_BENCH_LAYER_ROUTING={folder} first")
    from safetensors.torch import load_file
    tensors = load_file(path, device=str(device))
    count = sum(1 for name in tensors if name.endswith(".router"))
    if count != len(layers):
        raise SystemExit(f"{path} holds {count} layers' routers; MOE_SWEEP_LAYERS asks for {len(layers)}")
    for l, w in enumerate(layers):
        w["router"] = tensors[f"layers.{l}.router"]
        if "bias" in w:
            w["bias"] = tensors[f"layers.{l}.bias"]
    ours = sum(int(tensors[f"layers.{l}.active"][0]) for l in range(count)) / count
    return tensors["hidden"], ours


def route(x, w, p):
    logits = x.float() @ w["router"].float().t()  # [T, E]
    k = p["k"]
    if not p["deepseek"]:
        weights, ids = logits.softmax(dim=-1).topk(k, dim=-1)
        return ids, weights / weights.sum(dim=-1, keepdim=True)
    t, e = logits.shape
    scores = logits.sigmoid()
    choice = scores + w["bias"]
    group_scores = choice.view(t, GROUPS, e // GROUPS).topk(2, dim=-1).values.sum(dim=-1)
    kept = torch.zeros_like(group_scores).scatter_(1, group_scores.topk(TOPK_GROUPS, dim=-1).indices, 1.0)
    mask = kept.unsqueeze(-1).expand(t, GROUPS, e // GROUPS).reshape(t, e)
    ids = choice.masked_fill(mask == 0, 0.0).topk(k, dim=-1).indices
    weights = scores.gather(1, ids)
    return ids, weights / (weights.sum(dim=-1, keepdim=True) + 1e-20) * SCALE


def forward(x, w, p):
    t, i, e, k = x.shape[0], p["i"], p["e"], p["k"]
    ids, weights = route(x, w, p)
    flat = ids.flatten()
    order = torch.argsort(flat, stable=True)
    token_of_row = order // k
    # Counts without bincount, which would read its maximum back to the host (no graph capture).
    counts = torch.zeros(e, dtype=torch.int32, device=x.device).scatter_add_(0, flat, torch.ones_like(flat, dtype=torch.int32))
    offsets = torch.cumsum(counts, 0, dtype=torch.int32)
    gathered = x.index_select(0, token_of_row)
    gate_up = torch._grouped_mm(gathered, w["gate_up"].transpose(-2, -1), offs=offsets)  # [T*k, 2I]
    activation = F.silu(gate_up[:, :i]) * gate_up[:, i:]
    expert_out = torch._grouped_mm(activation, w["down"].transpose(-2, -1), offs=offsets)  # [T*k, H]
    scaled = expert_out.float() * weights.flatten()[order].unsqueeze(1)
    out = torch.zeros(t, x.shape[1], dtype=torch.float32, device=x.device).index_add_(0, token_of_row, scaled)
    if "shared_gate_up" in w:
        s = p["shared"]
        shared = x @ w["shared_gate_up"].t()
        out += ((F.silu(shared[:, :s]) * shared[:, s:]) @ w["shared_down"].t()).float()
    return out


def medians_ms(fn, with_graph):
    """Median eager ms of fn and, if asked, of its CUDA graph's replay. The eager and graph samples alternate, so both run
    at the same clock (timed one after the other, the second ran under the power cap the first had raised), as the C#
    bench does."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    g = None
    if with_graph:
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            fn()
        g.replay()
        torch.cuda.synchronize()

    def sample(run):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)

    eager, replayed = [], []
    for _ in range(20):
        eager.append(sample(fn))
        if g is not None:
            replayed.append(sample(g.replay))
    median = lambda times: sorted(times)[len(times) // 2]
    return median(eager), (median(replayed) if g is not None else None)


def active_weight_bytes(p, active):
    """Router + the experts the routing really hit + shared experts (random routers are not uniform)."""
    per_expert = 3 * p["h"] * p["i"] * 2
    return int(p["e"] * p["h"] * 2 + active * per_expert + 3 * p["h"] * p["shared"] * 2)


def main():
    device = torch.device("cuda")
    name = torch.cuda.get_device_name()
    bandwidth = 4.2e12 if "H200" in name else 3.0e12
    torch.manual_seed(2026)
    print(f"# MoE layer PyTorch composite on {name}, bf16; floor = active-weight bytes / {bandwidth / 1e12:.1f} TB/s")
    print(f"{'preset':<14} {'T':>6} {'eager(ms)':>10} {'graph(ms)':>10} {'tokens/s':>12} {'active(MB)':>11} {'floor(ms)':>10} {'ratio':>7}")
    rows = []
    for preset, p in [(n, q) for n, q in PRESETS.items() if wanted_model(n)]:
        # MOE_SWEEP_LAYERS=N: N layers of different weights, each timed step a forward of every one (time / N), as the
        # C# sweep cycles through them: no layer's weights are still in L2 when its turn comes again.
        layers = [random_weights(p, device) for _ in range(int(os.environ.get("MOE_SWEEP_LAYERS", "1") or 1))]
        for tokens in listed_tokens():
            shared = shared_routing(preset, tokens, layers, device)
            x = shared[0] if shared else torch.empty(tokens, p["h"], dtype=torch.bfloat16, device=device).uniform_(-1, 1)
            step = lambda: [forward(x, each, p) for each in layers]
            eager, graph = medians_ms(step, with_graph=tokens <= 128)
            eager /= len(layers)
            graph = graph / len(layers) if graph is not None else None
            best = min(eager, graph) if graph is not None else eager
            # Each layer's router hits its own experts: the floor counts their mean over the layers timed.
            active = sum(int(route(x, each, p)[0].unique().numel()) for each in layers) / len(layers)
            nbytes = active_weight_bytes(p, active)
            floor_ms = nbytes / bandwidth * 1e3
            graph_text = f"{graph:.4f}" if graph is not None else "-"
            print(f"{preset:<14} {tokens:>6} {eager:>10.4f} {graph_text:>10} {tokens / (best * 1e-3):>12.0f} "
                  f"{nbytes / 1e6:>11.1f} {floor_ms:>10.4f} {best / floor_ms:>7.2f}"
                  + (f"  routing from the C# bench: experts hit {active:.2f} here, {shared[1]:.2f} there" if shared else ""))
            rows.append(dict(preset=preset, tokens=tokens, eager_ms=eager, graph_ms=graph, tokens_per_s=tokens / (best * 1e-3),
                             active_experts=active, active_weight_bytes=nbytes, floor_ms=floor_ms, ratio=best / floor_ms,
                             routing_from_csharp=bool(shared), csharp_active_experts=shared[1] if shared else None))
        del layers
        torch.cuda.empty_cache()
    if os.environ.get("OUT"):
        os.makedirs(os.environ["OUT"], exist_ok=True)  # a folder the caller named but did not make
        with open(os.path.join(os.environ["OUT"], "moe_layer-torch.json"), "w") as f:
            json.dump(dict(device=name, dtype="bf16", rows=rows), f, indent=2)


if __name__ == "__main__":
    main()
