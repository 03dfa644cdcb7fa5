using BenchmarkDotNet.Attributes;
using MoeRuntime.Accelerators;
using MoeRuntime.Benchmarks.Infrastructure;
using MoeRuntime.Kernels.Activation;
using MoeRuntime.Kernels.Permute;
using MoeRuntime.Kernels.Routing;

namespace MoeRuntime.Benchmarks.Kernels;

/// <summary>
/// The token ops' CPU twins (parallel over tokens/rows, vectorised conversions), with GB/s columns:
/// routing (T=1024, E=128/k=8 softmax and E=256/k=8 DeepSeek grouped), permute and combine
/// (T=1024, H=4096, k=8, bf16), SiLU-and-mul ([8192, 2*2048] bf16). GPU numbers come from the token_ops sweep.
/// </summary>
public class TokenOpsCpuBenchmarks : IWorkload
{
    private const int Tokens = 1024, Hidden = 4096, TopK = 8, Experts = 256, ActivationRows = 8192, Intermediate = 2048;
    private readonly List<MemoryBuffer> _buffers = new();
    private Action _run = () => { };

    [Params("routing-softmax-E128", "routing-deepseek-E256", "permute", "combine", "silu-and-mul")]
    public string Op { get; set; } = "permute";

    public double Bytes => Op switch
    {
        "routing-softmax-E128" => 4.0 * Tokens * 128 + 8.0 * Tokens * TopK,
        "routing-deepseek-E256" => 4.0 * Tokens * Experts + 8.0 * Tokens * TopK,
        "permute" => 2.0 * 2 * Tokens * TopK * Hidden,
        "combine" => 2.0 * Tokens * TopK * Hidden + 2.0 * Tokens * Hidden,
        _ => 2.0 * 3 * ActivationRows * Intermediate,
    };

    public double Flops => 0;

    [GlobalSetup]
    public void Setup()
    {
        var cpu = BenchDevices.Get("cpu");
        var random = new Random(7);
        T Keep<T>(T buffer) where T : MemoryBuffer
        {
            _buffers.Add(buffer);
            return buffer;
        }
        float[] Uniform(int n) => Enumerable.Range(0, n).Select(_ => random.NextSingle() * 2 - 1).ToArray();
        var ids = Keep(cpu.Upload<int>(Enumerable.Range(0, Tokens).SelectMany(_ => Enumerable.Range(0, Experts).OrderBy(_ => random.Next()).Take(TopK)).ToArray()));
        var hidden = Keep(cpu.Upload<BFloat16>(Uniform(Tokens * Hidden).Select(v => (BFloat16)v).ToArray()));
        var counts = Keep(cpu.Allocate<int>(Experts));
        var offsets = Keep(cpu.Allocate<int>(Experts + 1));
        var rowOfSlot = Keep(cpu.Allocate<int>(Tokens * TopK));
        var tokenOfRow = Keep(cpu.Allocate<int>(Tokens * TopK));
        var gathered = Keep(cpu.Allocate<BFloat16>((long)Tokens * TopK * Hidden));
        Permute.Run(ids, Tokens, TopK, Experts, 1, counts, offsets, rowOfSlot, tokenOfRow, hidden, Hidden, gathered);
        switch (Op)
        {
            case "routing-softmax-E128" or "routing-deepseek-E256":
                int experts = Op == "routing-softmax-E128" ? 128 : Experts;
                var logits = Keep(cpu.Upload<float>(Uniform(Tokens * experts)));
                var bias = Keep(cpu.Upload<float>(Uniform(experts)));
                var options = experts == 128 ? TopKRoutingOptions.Softmax(TopK) : TopKRoutingOptions.DeepSeek(TopK, 8, 4, 2.5f, bias);
                var weights = Keep(cpu.Allocate<float>(Tokens * TopK));
                _run = () => TopKRouting.Run(logits, Tokens, experts, options, rowOfSlot, weights, counts);
                break;
            case "permute":
                _run = () => Permute.Run(ids, Tokens, TopK, Experts, 1, counts, offsets, rowOfSlot, tokenOfRow, hidden, Hidden, gathered);
                break;
            case "combine":
                var slotWeights = Keep(cpu.Upload<float>(Uniform(Tokens * TopK)));
                var output = Keep(cpu.Allocate<BFloat16>((long)Tokens * Hidden));
                _run = () => Combine.Run(gathered, rowOfSlot, slotWeights, Tokens, TopK, Hidden, output);
                break;
            default:
                var gateUp = Keep(cpu.Upload<BFloat16>(Uniform(ActivationRows * 2 * Intermediate).Select(v => (BFloat16)v).ToArray()));
                var activated = Keep(cpu.Allocate<BFloat16>((long)ActivationRows * Intermediate));
                _run = () => GatedActivation.Run(GatedActivationKind.Silu, gateUp, ActivationRows, Intermediate, activated);
                break;
        }
    }

    [Benchmark]
    public void Run() => _run();

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var buffer in _buffers)
            buffer.Dispose();
        _buffers.Clear();
    }
}
