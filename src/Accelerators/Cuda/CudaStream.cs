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
        // Under the accelerator's capture gate: another thread's context synchronize either ends before this capture begins
        // or sees it and waits stream by stream instead (CudaAccelerator.SynchronizeCore).
        lock (Accelerator.CaptureGate)
        {
            CudaCheck.ThrowIfFailed(CudaDriver.cuStreamBeginCapture(Handle, threadLocalMode));
            _captureNumber++;
            _capturing = true;
        }
    }

    /// <summary>
    /// Between <see cref="BeginCapture"/> and <see cref="EndCapture"/> (work that reads host memory when it runs must not be
    /// captured), or part of another stream's capture: it waited on an event recorded there, and that capture has not ended.
    /// </summary>
    public bool IsCapturing => _capturing || JoinedCapture is not null;

    /// <summary>The stream that began the capture this one is in (itself, or the one it joined), or null.</summary>
    internal CudaStream? CaptureRoot => _capturing ? this : JoinedCapture;

    /// <summary>Captures begun on this stream (tells one of its captures from a later one).</summary>
    internal int CaptureNumber => _captureNumber;

    /// <summary>The stream whose capture, still running, this one joined by waiting on an event recorded in it; else null.</summary>
    private CudaStream? JoinedCapture => _joined is { } root && root._capturing && root._captureNumber == _joinedNumber ? root : null;

    private volatile bool _capturing; // read by other threads' Accelerator.Synchronize
    private int _captureNumber;       // captures begun on this stream: tells a joined stream's capture from a later one
    private CudaStream? _joined;      // the stream that began the capture this one joined (never a joined stream itself)
    private int _joinedNumber;

    /// <summary>
    /// Ends a capture and returns the graph. It is instantiated at its first launch (or by
    /// <see cref="CudaGraph.Instantiate"/>), not here: instantiating while another stream of this thread
    /// is still capturing is refused by the driver, and multi-GPU work captures several streams at once.
    /// </summary>
    public CudaGraph EndCapture()
    {
        Accelerator.Bind();
        nint graph;
        try
        {
            CudaCheck.ThrowIfFailed(CudaDriver.cuStreamEndCapture(Handle, out graph));
        }
        finally
        {
            _capturing = false; // ended, or invalidated: either way no longer capturing (cleared after the end, not before)
        }
        return Accelerator.Track(new CudaGraph(Accelerator, graph));
    }

    protected override void SynchronizeCore()
    {
        Accelerator.Bind();
        CudaCheck.ThrowIfFailed(CudaDriver.cuStreamSynchronize(_handle));
    }

    protected override void WaitCore(AcceleratorEvent evt)
    {
        Accelerator.Bind();
        var cudaEvent = (CudaEvent)evt;
        // Waiting on an event recorded in a capture makes this stream part of that capture until it ends, and another
        // thread's cuStreamSynchronize on it would break the capture. Under the capture gate, so that Accelerator.Synchronize
        // either sees the join or has finished with this stream first.
        lock (Accelerator.CaptureGate)
        {
            CudaCheck.ThrowIfFailed(CudaDriver.cuStreamWaitEvent(_handle, cudaEvent.Handle, 0));
            // Only an event recorded inside a capture that is still running joins it; a stream already in a capture waiting
            // on another of its streams (the join back) changes nothing.
            if (!IsCapturing && cudaEvent.RecordedInCapture is { } root && root._capturing && root._captureNumber == cudaEvent.RecordedInCaptureNumber
                && !ReferenceEquals(root, this))
                (_joined, _joinedNumber) = (root, root._captureNumber);
        }
    }

    protected override void DisposeCore()
    {
        if (_handle == 0)
            return;
        CudaAccelerator.SetCurrent(Accelerator.Context);
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
        var cudaStream = (CudaStream)stream;
        CudaCheck.ThrowIfFailed(CudaDriver.cuEventRecord(_handle, cudaStream.Handle));
        RecordedInCapture = cudaStream.CaptureRoot;
        RecordedInCaptureNumber = RecordedInCapture?.CaptureNumber ?? 0;
    }

    /// <summary>
    /// The stream that began the capture the last <see cref="AcceleratorEvent.Record"/> was made in (null: recorded outside
    /// any), and that capture's number: a stream waiting on this event joins that capture while it runs.
    /// </summary>
    internal CudaStream? RecordedInCapture { get; private set; }

    internal int RecordedInCaptureNumber { get; private set; }

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
        CudaAccelerator.SetCurrent(Cuda.Context);
        CudaDriver.cuEventDestroy(_handle);
        _handle = 0;
    }
}

/// <summary>A captured CUDA graph: replays the captured work with one launch.</summary>
public sealed class CudaGraph : IDisposable
{
    private readonly CudaAccelerator _accelerator;
    private nint _graph;
    private nint _exec;

    internal CudaGraph(CudaAccelerator accelerator, nint graph)
    {
        _accelerator = accelerator;
        _graph = graph;
    }

    /// <summary>Instantiates the graph (done by the first launch otherwise); call it after every capture of the thread has ended.</summary>
    public void Instantiate()
    {
        ObjectDisposedException.ThrowIf(_graph == 0, this);
        if (_exec != 0)
            return;
        _accelerator.Bind();
        CudaCheck.ThrowIfFailed(CudaDriver.cuGraphInstantiateWithFlags(out _exec, _graph, 0));
    }

    public void Launch(CudaStream stream)
    {
        Instantiate();
        CudaCheck.ThrowIfFailed(CudaDriver.cuGraphLaunch(_exec, stream.Handle));
    }

    public void Dispose()
    {
        if (_graph == 0)
            return;
        _accelerator.Untrack(this);
        if (!_accelerator.IsDisposed)
        {
            CudaAccelerator.SetCurrent(_accelerator.Context);
            if (_exec != 0)
                CudaDriver.cuGraphExecDestroy(_exec);
            CudaDriver.cuGraphDestroy(_graph);
        }
        _exec = 0;
        _graph = 0;
    }
}
