"""AllReduce through torch.distributed (NCCL): the reference for `moe bench allreduce`.

One process per GPU (torch.multiprocessing.spawn), bf16, sizes 1 KB .. 256 MB by factors of 2.
Each size: a correctness check on small integers (exact in bf16), then CUDA-graph timing: `INNER`
all_reduce calls captured in one graph, replayed after warm-up, timed with CUDA events on every rank;
the row reports the median per call over samples of the slowest rank. busbw = algbw * 2(n-1)/n.
Prints a table; writes $OUT/allreduce_nccl-torch.json when OUT is set.
Usage: python3 bench/reference/allreduce_nccl.py [ngpus] (default: every visible GPU).
"""
import json
import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WARMUP, SAMPLES, INNER = 5, 20, 10
SIZES = [1024 << i for i in range(19)]  # 1 KB .. 256 MB


def worker(rank, world, port, results):
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")  # no NVLink multicast on shared machines
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            device_id=torch.device("cuda", rank))
    rows = []
    for size in SIZES:
        count = size // 2
        index = torch.arange(count, device="cuda", dtype=torch.int64)
        x = ((rank * 7919 + index * 131) % 17 - 8).to(torch.bfloat16)
        expected = sum(((r * 7919 + index * 131) % 17 - 8) for r in range(world)).to(torch.bfloat16)
        check = x.clone()
        dist.all_reduce(check)
        wrong = int((check != expected).sum().item())

        stream = torch.cuda.Stream()
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm NCCL up on the capture stream
                dist.all_reduce(x)
            torch.cuda.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=stream):
                for _ in range(INNER):
                    dist.all_reduce(x)
            for _ in range(WARMUP):
                graph.replay()
            torch.cuda.synchronize()
            times = []
            for _ in range(SAMPLES):
                dist.barrier()
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record(stream)
                graph.replay()
                end.record(stream)
                end.synchronize()
                times.append(start.elapsed_time(end) * 1e3 / INNER)  # us per call
        t = torch.tensor(times, device="cuda")
        dist.all_reduce(t, op=dist.ReduceOp.MAX)  # per sample, the slowest rank
        us = float(t.median().item())
        algbw = size / (us * 1e-6) / 1e9
        rows.append({"bytes": size, "count": count, "time_us": us, "algbw_gbs": algbw,
                     "busbw_gbs": algbw * 2 * (world - 1) / world, "wrong": wrong})
        del graph
    if rank == 0:
        results.extend(rows)
    dist.destroy_process_group()


def main():
    world = int(sys.argv[1]) if len(sys.argv) > 1 else torch.cuda.device_count()
    port = 29500 + os.getpid() % 1000
    with mp.Manager() as manager:
        results = manager.list()
        mp.spawn(worker, args=(world, port, results), nprocs=world, join=True)
        rows = list(results)
    device = torch.cuda.get_device_name(0)
    print(f"# torch.distributed NCCL AllReduce, {world} x {device}, bf16, CUDA graph of {INNER} calls, "
          f"median of {SAMPLES}; busbw = algbw * 2(n-1)/n")
    print(f"{'size':>10} {'count':>12} {'time(us)':>10} {'algbw(GB/s)':>12} {'busbw(GB/s)':>12} {'#wrong':>8}")
    for r in rows:
        print(f"{r['bytes']:>10} {r['count']:>12} {r['time_us']:>10.2f} {r['algbw_gbs']:>12.2f} "
              f"{r['busbw_gbs']:>12.2f} {r['wrong']:>8}")
    out = os.environ.get("OUT")
    if out:
        with open(os.path.join(out, "allreduce_nccl-torch.json"), "w") as f:
            json.dump({"device": device, "ranks": world, "dtype": "bf16", "torch": torch.__version__,
                       "nccl": ".".join(map(str, torch.cuda.nccl.version())), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
