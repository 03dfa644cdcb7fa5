namespace MoeRuntime.Accelerators.Cuda;

/// <summary>A CUstream (non-blocking with respect to the legacy default stream, so it can be captured into graphs).</summary>
public sealed class CudaStream : AcceleratorStream
{
    private const uint NonBlocking = 1;
    private nint _handle;

    internal CudaStream(CudaAccelerator accelerator) : base(accelerator)
    {
        accelerator.Bind();
        CudaCheck.ThrowIfFailed(CudaDriver.cuStreamCreate(out _handle, NonBlocking));
    }

    public nint Handle
    {
        get
        {
            ThrowIfDisposed();
            return _handle;
        }
    }

    public new CudaAccelerator Accelerator => (CudaAccelerator)base.Accelerator;

    /// <summary>True when all work enqueued so far has finished (does not wait).</summary>
    public bool IsIdle()
    {
        Accelerator.Bind();
        var result = CudaDriver.cuStreamQuery(Handle);
        if (result == CudaResult.NotReady)
            return false;
        CudaCheck.ThrowIfFailed(result);
        return true;
    }

    /// <summary>Records the work enqueued between this call and <see cref="EndCapture"/> into a graph instead of running it.</summary>
    public void BeginCapture()
    {
        Accelerator.Bind();
        const int threadLocalMode = 1; // CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
        CudaCheck.ThrowIfFailed(CudaDriver.cuStreamBeginCapture(Handle, threadLocalMode));
    }

    /// <summary>Ends a capture and returns the instantiated graph, ready to replay.</summary>
    public CudaGraph EndCapture()
    {
        Accelerator.Bind();
        CudaCheck.ThrowIfFailed(CudaDriver.cuStreamEndCapture(Handle, out nint graph));
        try
        {
            CudaCheck.ThrowIfFailed(CudaDriver.cuGraphInstantiateWithFlags(out nint exec, graph, 0));
            return Accelerator.Track(new CudaGraph(Accelerator, graph, exec));
        }
        catch
        {
            CudaDriver.cuGraphDestroy(graph);
            throw;
        }
    }

    protected override void SynchronizeCore()
    {
        Accelerator.Bind();
        CudaCheck.ThrowIfFailed(CudaDriver.cuStreamSynchronize(_handle));
    }

    protected override void WaitCore(AcceleratorEvent evt)
    {
        Accelerator.Bind();
        CudaCheck.ThrowIfFailed(CudaDriver.cuStreamWaitEvent(_handle, ((CudaEvent)evt).Handle, 0));
    }

    protected override void DisposeCore()
    {
        if (_handle == 0)
            return;
        CudaDriver.cuCtxSetCurrent(Accelerator.Context);
        CudaDriver.cuStreamDestroy(_handle);
        _handle = 0;
    }
}

/// <summary>A CUevent with timing enabled.</summary>
public sealed class CudaEvent : AcceleratorEvent
{
    private nint _handle;

    internal CudaEvent(CudaAccelerator accelerator) : base(accelerator)
    {
        accelerator.Bind();
        CudaCheck.ThrowIfFailed(CudaDriver.cuEventCreate(out _handle, 0));
    }

    internal nint Handle => _handle;
    private CudaAccelerator Cuda => (CudaAccelerator)Accelerator;

    protected override void RecordCore(AcceleratorStream stream)
    {
        Cuda.Bind();
        CudaCheck.ThrowIfFailed(CudaDriver.cuEventRecord(_handle, ((CudaStream)stream).Handle));
    }

    protected override void SynchronizeCore()
    {
        Cuda.Bind();
        CudaCheck.ThrowIfFailed(CudaDriver.cuEventSynchronize(_handle));
    }

    protected override float ElapsedCore(AcceleratorEvent start)
    {
        Cuda.Bind();
        CudaCheck.ThrowIfFailed(CudaDriver.cuEventElapsedTime(out float ms, ((CudaEvent)start).Handle, _handle));
        return ms;
    }

    protected override void DisposeCore()
    {
        if (_handle == 0)
            return;
        CudaDriver.cuCtxSetCurrent(Cuda.Context);
        CudaDriver.cuEventDestroy(_handle);
        _handle = 0;
    }
}

/// <summary>An instantiated CUDA graph: replays the captured work with one launch.</summary>
public sealed class CudaGraph : IDisposable
{
    private readonly CudaAccelerator _accelerator;
    private nint _graph;
    private nint _exec;

    internal CudaGraph(CudaAccelerator accelerator, nint graph, nint exec)
    {
        _accelerator = accelerator;
        _graph = graph;
        _exec = exec;
    }

    public void Launch(CudaStream stream)
    {
        ObjectDisposedException.ThrowIf(_exec == 0, this);
        _accelerator.Bind();
        CudaCheck.ThrowIfFailed(CudaDriver.cuGraphLaunch(_exec, stream.Handle));
    }

    public void Dispose()
    {
        if (_exec == 0)
            return;
        _accelerator.Untrack(this);
        if (!_accelerator.IsDisposed)
        {
            CudaDriver.cuCtxSetCurrent(_accelerator.Context);
            CudaDriver.cuGraphExecDestroy(_exec);
            CudaDriver.cuGraphDestroy(_graph);
        }
        _exec = 0;
        _graph = 0;
    }
}
