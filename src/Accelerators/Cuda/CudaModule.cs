using System.Collections.Concurrent;

namespace MoeRuntime.Accelerators.Cuda;

/// <summary>A loaded CUmodule (one compiled source) and the kernels looked up in it.</summary>
internal sealed class CudaModule : IDisposable
{
    private readonly CudaAccelerator _accelerator;
    private readonly ConcurrentDictionary<string, CudaKernel> _kernels = new();
    private readonly bool _waitsForPriorGrid;
    private nint _module;

    public unsafe CudaModule(CudaAccelerator accelerator, string sourceName, byte[] image, bool waitsForPriorGrid)
    {
        _accelerator = accelerator;
        SourceName = sourceName;
        _waitsForPriorGrid = waitsForPriorGrid;
        fixed (byte* p = image)
            CudaCheck.ThrowIfFailed(CudaDriver.cuModuleLoadData(out _module, p), $"cuModuleLoadData({sourceName})");
    }

    public string SourceName { get; }

    public CudaKernel GetKernel(string entry) => _kernels.GetOrAdd(entry, name =>
    {
        ObjectDisposedException.ThrowIf(_module == 0, this);
        _accelerator.Bind();
        var result = CudaDriver.cuModuleGetFunction(out nint function, _module, name);
        if (result == CudaResult.NotFound)
            throw new AcceleratorException($"kernel '{name}' not found in {SourceName} (is it extern \"C\" __global__?)");
        CudaCheck.ThrowIfFailed(result, $"cuModuleGetFunction({SourceName}, {name})");
        return new CudaKernel(_accelerator, name, function, _waitsForPriorGrid);
    });

    public void Dispose()
    {
        if (_module == 0)
            return;
        CudaAccelerator.SetCurrent(_accelerator.Context);
        CudaDriver.cuModuleUnload(_module);
        _module = 0;
    }
}
