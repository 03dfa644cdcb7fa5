using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using MoeRuntime.Accelerators.Cpu;
using MoeRuntime.Accelerators.Cuda;

namespace MoeRuntime.Accelerators;

/// <summary>
/// Discovers and owns accelerators: the CPU always, every CUDA device when libcuda loads and cuInit
/// succeeds. Without CUDA it logs one line and carries on with the CPU. Extra CPU accelerators
/// (<c>cpu:1</c>, <c>cpu:2</c>, ...) are made on request, each with its own memory.
/// </summary>
public sealed class AcceleratorContext : IDisposable
{
    private readonly Dictionary<AcceleratorId, Accelerator> _accelerators = new();
    private readonly object _lock = new();
    private readonly ILogger _logger;
    private bool _disposed;

    public AcceleratorContext(ILogger? logger = null)
    {
        _logger = logger ?? NullLogger.Instance;
        Add(new CpuAccelerator(0));
        if (CudaRuntimeInfo.IsAvailable)
        {
            for (int i = 0; i < CudaRuntimeInfo.DeviceCount; i++)
                Add(CudaAccelerator.Open(i));
            _logger.LogInformation("CUDA {Version}: {Count} device(s)", CudaRuntimeInfo.DriverVersion, CudaRuntimeInfo.DeviceCount);
        }
        else
        {
            _logger.LogInformation("CUDA not available, using the CPU only: {Reason}", CudaRuntimeInfo.UnavailableReason);
        }
    }

    /// <summary>The accelerators discovered so far (CPU first, then CUDA in ordinal order, then extra CPUs made on request).</summary>
    public IReadOnlyList<Accelerator> Accelerators
    {
        get
        {
            lock (_lock)
                return _accelerators.Values.OrderBy(a => a.Kind).ThenBy(a => a.Id.Index).ToList();
        }
    }

    public IReadOnlyList<CudaAccelerator> CudaAccelerators => Accelerators.OfType<CudaAccelerator>().ToList();

    public CpuAccelerator Cpu => (CpuAccelerator)Get(new AcceleratorId(AcceleratorKind.Cpu, 0));

    /// <summary>The accelerator named <paramref name="name"/> (cpu, cpu:N, cuda:N); CPU accelerators are created on first use.</summary>
    public Accelerator Get(string name) => Get(AcceleratorId.Parse(name));

    public Accelerator Get(AcceleratorId id)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        lock (_lock)
        {
            if (_accelerators.TryGetValue(id, out var accelerator))
                return accelerator;
            if (id.Kind == AcceleratorKind.Cpu)
                return Add(new CpuAccelerator(id.Index));
            int count = _accelerators.Keys.Count(k => k.Kind == AcceleratorKind.Cuda);
            throw new ArgumentException(count == 0
                ? $"{id} is not available: {CudaRuntimeInfo.UnavailableReason}"
                : $"{id} does not exist: this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}");
        }
    }

    /// <summary>Accelerators for a list such as <c>cuda:0,cuda:1</c> or <c>cpu:0,cpu:1,cpu:2</c>.</summary>
    public IReadOnlyList<Accelerator> GetList(string names) => AcceleratorId.ParseList(names).Select(Get).ToList();

    /// <summary>Whether <paramref name="id"/> exists here (CPU accelerators always do).</summary>
    public bool Has(AcceleratorId id)
    {
        lock (_lock)
            return id.Kind == AcceleratorKind.Cpu || _accelerators.ContainsKey(id);
    }

    private Accelerator Add(Accelerator accelerator)
    {
        _accelerators[accelerator.Id] = accelerator;
        return accelerator;
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        lock (_lock)
        {
            foreach (var accelerator in _accelerators.Values)
                accelerator.Dispose();
            _accelerators.Clear();
        }
    }
}
