using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;

namespace MoeRuntime.Tests.Infrastructure;

/// <summary>
/// The accelerators every test runs on, shared by the whole test run: <c>cpu</c> always, <c>cuda:0</c>
/// when a GPU is present (otherwise that row is skipped with the reason). Tests take the accelerator's
/// name as a theory parameter from <see cref="Names"/> and call <see cref="Get"/>.
/// </summary>
public static class TestDevices
{
    private static readonly Lazy<AcceleratorContext> LazyContext = new(() =>
    {
        var context = new AcceleratorContext();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => context.Dispose();
        return context;
    });

    public static AcceleratorContext Context => LazyContext.Value;

    /// <summary>Theory data: one row per accelerator kind a test must run on.</summary>
    public static TheoryData<string> Names => new() { "cpu", "cuda:0" };

    /// <summary>Theory data: every item of <paramref name="items"/> on every accelerator of <see cref="Names"/>.</summary>
    public static TheoryData<string, T> Each<T>(IEnumerable<T> items)
    {
        var data = new TheoryData<string, T>();
        foreach (var device in Names)
            foreach (var item in items)
                data.Add(device.Data, item);
        return data;
    }

    /// <summary>The accelerator <paramref name="name"/>, or a dynamic skip saying why it is absent.</summary>
    public static Accelerator Get(string name)
    {
        var id = AcceleratorId.Parse(name);
        if (id.Kind == AcceleratorKind.Cuda)
        {
            if (!CudaRuntimeInfo.IsAvailable)
                Assert.Skip($"no CUDA device: {CudaRuntimeInfo.UnavailableReason}");
            if (id.Index >= CudaRuntimeInfo.DeviceCount)
                Assert.Skip($"{id} needs {id.Index + 1} CUDA devices; this machine has {CudaRuntimeInfo.DeviceCount}");
        }
        return Context.Get(id);
    }

    /// <summary>
    /// A new accelerator for <paramref name="name"/>'s device that the caller owns and disposes: for
    /// checks of <see cref="Accelerator.AllocatedBytes"/>, which tests running in parallel on the shared
    /// accelerators would disturb.
    /// </summary>
    public static Accelerator CreatePrivate(string name)
    {
        var id = Get(name).Id;
        return id.Kind == AcceleratorKind.Cpu
            ? new MoeRuntime.Accelerators.Cpu.CpuAccelerator(1000 + id.Index)
            : CudaAccelerator.Open(id.Index);
    }

    /// <summary>
    /// <paramref name="count"/> accelerators of one kind, for collectives and expert parallelism:
    /// cpu:0..cpu:N-1, or cuda:0..cuda:N-1 (skipped when there are fewer GPUs).
    /// </summary>
    public static IReadOnlyList<Accelerator> GetGroup(string kind, int count)
    {
        var k = AcceleratorId.Parse(kind).Kind;
        return Enumerable.Range(0, count).Select(i => Get(new AcceleratorId(k, i).ToString())).ToList();
    }
}
