using BenchmarkDotNet.Attributes;
using MoeRuntime.Accelerators;
using MoeRuntime.Benchmarks.Infrastructure;

namespace MoeRuntime.Benchmarks.Accelerators;

/// <summary>
/// The memory-bandwidth ceiling every memory-bound kernel is measured against: a device-to-device
/// copy, counting bytes read plus bytes written. Synchronises before returning.
/// </summary>
public class DeviceCopyBenchmarks : IWorkload
{
    private MemoryBuffer<float>? _source;
    private MemoryBuffer<float>? _destination;

    [ParamsSource(nameof(Devices))]
    public string Device { get; set; } = "cpu";

    [Params(1 << 20, 64 << 20)]
    public int SizeBytes { get; set; } = 1 << 20;

    public static IEnumerable<string> Devices() => BenchDevices.Names();

    public double Bytes => 2.0 * SizeBytes;
    public double Flops => 0;

    [GlobalSetup]
    public void Setup()
    {
        var accelerator = BenchDevices.Get(Device);
        var data = new float[SizeBytes / 4];
        var random = new Random(1);
        for (int i = 0; i < data.Length; i++)
            data[i] = random.NextSingle();
        _source = accelerator.Upload<float>(data);
        _destination = accelerator.Allocate<float>(data.Length);
    }

    [Benchmark]
    public void Copy()
    {
        _destination!.CopyFrom(_source!);
        _destination.Accelerator.DefaultStream.Synchronize();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _source?.Dispose();
        _destination?.Dispose();
    }
}
