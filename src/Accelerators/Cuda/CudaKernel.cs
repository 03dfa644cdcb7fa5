using MoeRuntime.Accelerators.Nvrtc;

namespace MoeRuntime.Accelerators.Cuda;

/// <summary>
/// A kernel function of a loaded module. Launch takes its arguments as <see cref="KernelArg"/>s
/// (ints, floats, device pointers, buffers), in the order of the CUDA signature.
/// </summary>
public sealed class CudaKernel
{
    private readonly CudaAccelerator _accelerator;
    private readonly nint _function;
    private int _dynamicSharedLimit = -1; // the function's MaxDynamicSharedSizeBytes (48 KB less its static bytes), read on first need

    internal CudaKernel(CudaAccelerator accelerator, string name, nint function, bool waitsForPriorGrid)
    {
        _accelerator = accelerator;
        Name = name;
        _function = function;
        WaitsForPriorGrid = waitsForPriorGrid;
    }

    public string Name { get; }

    /// <summary>
    /// The kernel may be launched to overlap the previous kernel of its stream (see <see cref="DependentLaunchEnabled"/>): its
    /// source is marked <c>// dependent-launch</c> (every entry calls <c>moe_wait_prior_grid()</c> before it touches memory)
    /// and is not launched plainly by its header or the environment (<see cref="MayOverlapPriorGrid"/>).
    /// </summary>
    public bool WaitsForPriorGrid { get; }

    /// <summary>
    /// Programmatic dependent launch for kernels that wait for the prior grid, on devices of compute capability 9.0 and
    /// up: the next kernel's launch and block start-up overlap the previous kernel's tail instead of following its end.
    /// On by default; MOE_PDL=0 (or false here) launches every kernel plainly, for A/B measurements.
    /// </summary>
    public static bool DependentLaunchEnabled { get; set; } = Environment.GetEnvironmentVariable("MOE_PDL") != "0";

    /// <summary>
    /// Where a dependent-launch kernel lets the next one launch: false (MOE_PDL_TRIGGER unset or <c>late</c>), after its
    /// wait for the prior grid; true (<c>early</c>), before it (<c>-DMOE_PDL_EARLY_TRIGGER</c> for sources marked
    /// <c>// dependent-launch</c>; see moe_common.cuh). Read once, on the first kernel compiled; a bad value is an
    /// ArgumentException naming the variable.
    /// </summary>
    public static bool TriggerBeforeWait => s_triggerBeforeWait ??= ParseTrigger(Environment.GetEnvironmentVariable("MOE_PDL_TRIGGER"));

    private static bool? s_triggerBeforeWait;

    internal static bool ParseTrigger(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "late" => false,
        "early" => true,
        _ => throw new ArgumentException($"MOE_PDL_TRIGGER='{value}': expected 'late' (trigger after the wait) or 'early' (before it)", "MOE_PDL_TRIGGER"),
    };

    /// <summary>The compile option <see cref="TriggerBeforeWait"/> adds to dependent-launch sources.</summary>
    internal const string EarlyTriggerOption = "-DMOE_PDL_EARLY_TRIGGER";

    /// <summary>
    /// Whether the kernels of <paramref name="source"/> may be launched to overlap the kernel before them: it is marked
    /// <c>// dependent-launch</c>, and either not <c>// plain-launch</c> and not named in MOE_PDL_SKIP (sources launched
    /// plainly although marked, for A/B runs of one kernel family), or <c>// plain-launch</c> and named in MOE_PDL_OVERLAP
    /// (overlapped although their header says plainly, for the A/B that decides it).
    /// </summary>
    internal static bool MayOverlapPriorGrid(KernelSource source) =>
        source.WaitsForPriorGrid && (source.LaunchesPlainly ? OverlappedSources.Contains(source.Name) : !SkippedSources.Contains(source.Name));

    private static readonly HashSet<string> SkippedSources = SourceNames("MOE_PDL_SKIP");
    private static readonly HashSet<string> OverlappedSources = SourceNames("MOE_PDL_OVERLAP");

    private static HashSet<string> SourceNames(string variable) =>
        [.. (Environment.GetEnvironmentVariable(variable) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];

    /// <summary>Whether a launch of this kernel now carries the programmatic-serialization attribute.</summary>
    public bool LaunchesDependent => WaitsForPriorGrid && DependentLaunchEnabled && _accelerator.Info.ComputeMajor >= 9;

    [ThreadStatic]
    private static long t_launches;

    /// <summary>
    /// Kernels the calling thread has launched through this class, on any device (empty grids, which launch nothing, not
    /// counted): lets a test count what an op or a phase of a forward issues, undisturbed by other threads' work (the
    /// scale model's host enqueue term prices these launches).
    /// </summary>
    public static long LaunchesOnThisThread => t_launches;

    /// <summary>Registers per thread, from the compiled image (for resource reports).</summary>
    public int Registers => Attribute(CudaFunctionAttribute.NumRegs);
    public int LocalBytesPerThread => Attribute(CudaFunctionAttribute.LocalSizeBytes);
    public int StaticSharedBytes => Attribute(CudaFunctionAttribute.SharedSizeBytes);

    /// <summary>
    /// Blocks of <paramref name="blockSize"/> threads that fit on one SM at once. Answers are kept (they depend only on
    /// the function and the arguments), so launch rules may ask at every call.
    /// </summary>
    public int MaxActiveBlocksPerSm(int blockSize, int dynamicSharedBytes = 0)
    {
        if (_occupancy.TryGetValue((blockSize, dynamicSharedBytes), out int known))
            return known;
        _accelerator.Bind();
        AllowDynamicShared(dynamicSharedBytes); // past 48 KB the function must opt in, or the answer is 0
        CudaCheck.ThrowIfFailed(CudaDriver.cuOccupancyMaxActiveBlocksPerMultiprocessor(out int blocks, _function, blockSize, (nuint)dynamicSharedBytes));
        _occupancy[(blockSize, dynamicSharedBytes)] = blocks;
        return blocks;
    }

    private readonly System.Collections.Concurrent.ConcurrentDictionary<(int BlockSize, int DynamicSharedBytes), int> _occupancy = new();

    /// <summary>
    /// For a kernel launched in clusters of <paramref name="clusterSize"/> blocks (compiled with <c>__cluster_dims__</c> of
    /// that size, or without one): how many clusters of blocks of
    /// <paramref name="blockSize"/> threads can be resident at once. Clusters need their blocks on SMs of one GPC, so this
    /// can be less than SMs / cluster size: a persistent grid sized past it would run its last clusters after the others.
    /// Answers are kept.
    /// </summary>
    public unsafe int MaxActiveClusters(int clusterSize, int blockSize, int dynamicSharedBytes)
    {
        if (clusterSize < 1)
            throw new ArgumentOutOfRangeException(nameof(clusterSize), $"{Name}: a cluster of {clusterSize} blocks");
        if (_clusterOccupancy.TryGetValue((clusterSize, blockSize, dynamicSharedBytes), out int known))
            return known;
        _accelerator.Bind();
        AllowDynamicShared(dynamicSharedBytes);
        // The grid only has to be a multiple of the cluster size; the answer is the device's, not the grid's. The cluster
        // attribute must match the compile-time size, so a kernel compiled for another size is an error here.
        var attribute = new CudaLaunchAttribute { Id = CudaLaunchAttribute.ClusterDimension, Value = clusterSize, ValueY = 1, ValueZ = 1 };
        var config = new CudaLaunchConfig
        {
            GridX = (uint)(clusterSize * _accelerator.Info.MultiprocessorCount), GridY = 1, GridZ = 1,
            BlockX = (uint)blockSize, BlockY = 1, BlockZ = 1, SharedMemBytes = (uint)dynamicSharedBytes,
            Attributes = &attribute, AttributeCount = 1,
        };
        CudaCheck.ThrowIfFailed(CudaDriver.cuOccupancyMaxActiveClusters(out int clusters, _function, &config), $"cuOccupancyMaxActiveClusters({Name})");
        _clusterOccupancy[(clusterSize, blockSize, dynamicSharedBytes)] = clusters;
        return clusters;
    }

    private readonly System.Collections.Concurrent.ConcurrentDictionary<(int ClusterSize, int BlockSize, int DynamicSharedBytes), int> _clusterOccupancy = new();

    public void Launch(CudaStream stream, Dim3 grid, Dim3 block, int dynamicSharedBytes, params ReadOnlySpan<KernelArg> args) =>
        LaunchCore(stream, grid, block, dynamicSharedBytes, cooperative: false, args);

    /// <summary>
    /// A cooperative launch (CU_LAUNCH_ATTRIBUTE_COOPERATIVE): every block of the grid is resident at once, or the launch
    /// fails, so blocks may wait for each other (grid-wide barriers). The grid must fit the device's resident blocks.
    /// </summary>
    public void LaunchCooperative(CudaStream stream, Dim3 grid, Dim3 block, int dynamicSharedBytes, params ReadOnlySpan<KernelArg> args) =>
        LaunchCore(stream, grid, block, dynamicSharedBytes, cooperative: true, args);

    /// <summary>Raises the function's dynamic shared memory limit to <paramref name="bytes"/> where it is lower (the context is bound).</summary>
    private void AllowDynamicShared(int bytes)
    {
        if (bytes <= 0)
            return;
        if (_dynamicSharedLimit < 0)
            _dynamicSharedLimit = Attribute(CudaFunctionAttribute.MaxDynamicSharedSizeBytes);
        if (bytes <= _dynamicSharedLimit)
            return;
        int optin = _accelerator.Info.MaxSharedMemoryPerBlockOptin, fixedBytes = StaticSharedBytes;
        if (fixedBytes + bytes > optin)
            throw new ArgumentOutOfRangeException("dynamicSharedBytes", $"{Name}: {bytes} bytes of dynamic shared memory beside {fixedBytes} static; the device allows {optin} a block");
        CudaCheck.ThrowIfFailed(CudaDriver.cuFuncSetAttribute(_function, CudaFunctionAttribute.MaxDynamicSharedSizeBytes, bytes), $"cuFuncSetAttribute({Name}, MaxDynamicSharedSizeBytes)");
        _dynamicSharedLimit = bytes;
    }

    private unsafe void LaunchCore(CudaStream stream, Dim3 grid, Dim3 block, int dynamicSharedBytes, bool cooperative, ReadOnlySpan<KernelArg> args)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!ReferenceEquals(stream.Accelerator, _accelerator))
            throw new ArgumentException($"kernel {Name} of {_accelerator.Name} launched on a stream of {stream.Accelerator.Name}", nameof(stream));
        if (grid.Volume == 0)
            return; // nothing to do; CUDA rejects empty grids
        if (block.Volume is <= 0 or > 1024)
            throw new ArgumentOutOfRangeException(nameof(block), $"{Name}: block of {block.Volume} threads (1..1024)");
        _accelerator.Bind();
        AllowDynamicShared(dynamicSharedBytes);
        int count = args.Length;
        ulong* values = stackalloc ulong[Math.Max(count, 1)];
        void** pointers = stackalloc void*[Math.Max(count, 1)];
        // By-value structs (tensor maps: 128 bytes, 64-byte aligned) are copied into an aligned scratch area.
        int blobBytes = 0;
        for (int i = 0; i < count; i++)
            blobBytes += args[i].Blob is { } b ? (b.Length + 63) & ~63 : 0;
        byte* blobScratch = stackalloc byte[blobBytes + 64];
        byte* blob = (byte*)(((nint)blobScratch + 63) & ~(nint)63);
        for (int i = 0; i < count; i++)
        {
            if (args[i].Blob is { } bytes)
            {
                bytes.CopyTo(new Span<byte>(blob, bytes.Length));
                pointers[i] = blob;
                blob += (bytes.Length + 63) & ~63;
                continue;
            }
            values[i] = args[i].Bits;
            pointers[i] = &values[i];
        }
        CudaResult result;
        if (LaunchesDependent || cooperative)
        {
            var attributes = stackalloc CudaLaunchAttribute[2];
            uint attributeCount = 0;
            if (LaunchesDependent)
                attributes[attributeCount++] = new CudaLaunchAttribute { Id = CudaLaunchAttribute.ProgrammaticStreamSerialization, Value = 1 };
            if (cooperative)
                attributes[attributeCount++] = new CudaLaunchAttribute { Id = CudaLaunchAttribute.Cooperative, Value = 1 };
            var config = new CudaLaunchConfig
            {
                GridX = grid.X, GridY = grid.Y, GridZ = grid.Z, BlockX = block.X, BlockY = block.Y, BlockZ = block.Z,
                SharedMemBytes = (uint)dynamicSharedBytes, Stream = stream.Handle, Attributes = attributes, AttributeCount = attributeCount,
            };
            result = CudaDriver.cuLaunchKernelEx(&config, _function, pointers, null);
        }
        else
        {
            result = CudaDriver.cuLaunchKernel(_function, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z,
                (uint)dynamicSharedBytes, stream.Handle, pointers, null);
        }
        if (result != CudaResult.Success)
        {
            // The call's text only on failure: a launch builds no string.
            string kind = (LaunchesDependent, cooperative) switch
            {
                (true, true) => "Ex (dependent, cooperative launch)",
                (true, false) => "Ex (dependent launch)",
                (false, true) => "Ex (cooperative launch)",
                _ => "",
            };
            throw CudaCheck.Failure(result, $"cuLaunchKernel{kind}({Name}, grid {grid}, block {block}, {dynamicSharedBytes} B shared)");
        }
        t_launches++;
    }

    private int Attribute(CudaFunctionAttribute attribute)
    {
        _accelerator.Bind();
        CudaCheck.ThrowIfFailed(CudaDriver.cuFuncGetAttribute(out int value, attribute, _function));
        return value;
    }
}

/// <summary>
/// One kernel argument: at most 8 bytes stored little-endian in the low bytes (what cuLaunchKernel
/// reads through the pointer for an int, float, size_t or pointer parameter), or a tensor map's 128 bytes.
/// </summary>
public readonly struct KernelArg
{
    public ulong Bits { get; }

    /// <summary>A by-value struct argument wider than 8 bytes (a <see cref="CudaTensorMap"/>), or null.</summary>
    internal byte[]? Blob { get; }

    private KernelArg(ulong bits) => Bits = bits;

    private KernelArg(byte[] blob) => Blob = blob;

    /// <summary>A tensor map passes by value (a <c>const __grid_constant__</c> 128-byte parameter).</summary>
    public static implicit operator KernelArg(CudaTensorMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        return new KernelArg(map.Bytes.ToArray());
    }

    public static implicit operator KernelArg(int value) => new((uint)value);
    public static implicit operator KernelArg(uint value) => new(value);
    public static implicit operator KernelArg(long value) => new((ulong)value);
    public static implicit operator KernelArg(ulong value) => new(value);
    public static implicit operator KernelArg(float value) => new(BitConverter.SingleToUInt32Bits(value));
    public static implicit operator KernelArg(nint pointer) => new((ulong)pointer);

    /// <summary>A buffer passes its device address; the buffer must live on the launching device or a peer.</summary>
    public static implicit operator KernelArg(MemoryBuffer? buffer)
    {
        if (buffer is null)
            return new KernelArg(0);
        buffer.ThrowIfDisposed();
        if (buffer.Accelerator.Kind != AcceleratorKind.Cuda)
            throw new ArgumentException($"{buffer.Describe()} passed to a CUDA kernel; it must be CUDA device memory");
        return new KernelArg((ulong)buffer.Pointer);
    }
}
