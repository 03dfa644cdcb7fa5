namespace MoeRuntime.Accelerators;

/// <summary>An ordered queue of work on one accelerator. The CPU runs work as it is enqueued.</summary>
public abstract class AcceleratorStream : IDisposable
{
    private bool _disposed;

    protected AcceleratorStream(Accelerator accelerator) => Accelerator = accelerator;

    public Accelerator Accelerator { get; }
    public bool IsDisposed => _disposed;

    /// <summary>Blocks until all work enqueued so far has finished.</summary>
    public void Synchronize()
    {
        ThrowIfDisposed();
        SynchronizeCore();
    }

    /// <summary>Makes later work on this stream wait until <paramref name="evt"/> has completed (no host wait).</summary>
    public void Wait(AcceleratorEvent evt)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(evt);
        WaitCore(evt);
    }

    protected abstract void SynchronizeCore();
    protected abstract void WaitCore(AcceleratorEvent evt);
    protected abstract void DisposeCore();

    public void ThrowIfDisposed()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ObjectDisposedException.ThrowIf(Accelerator.IsDisposed, Accelerator);
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        Accelerator.Untrack(this);
        DisposeCore();
        GC.SuppressFinalize(this);
    }
}

/// <summary>A point in a stream's work: record it, wait on it, time between two of them.</summary>
public abstract class AcceleratorEvent : IDisposable
{
    private bool _disposed;

    protected AcceleratorEvent(Accelerator accelerator) => Accelerator = accelerator;

    public Accelerator Accelerator { get; }

    public void Record(AcceleratorStream? stream = null)
    {
        ThrowIfDisposed();
        var s = stream ?? Accelerator.DefaultStream;
        if (!ReferenceEquals(s.Accelerator, Accelerator))
            throw new ArgumentException($"event of {Accelerator.Name} recorded on a stream of {s.Accelerator.Name}", nameof(stream));
        RecordCore(s);
    }

    public void Synchronize()
    {
        ThrowIfDisposed();
        SynchronizeCore();
    }

    /// <summary>Milliseconds from <paramref name="start"/> to this event; both recorded and completed.</summary>
    public float ElapsedMillisecondsSince(AcceleratorEvent start)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(start);
        if (!ReferenceEquals(start.Accelerator, Accelerator))
            throw new ArgumentException("events of different accelerators cannot be timed against each other", nameof(start));
        return ElapsedCore(start);
    }

    protected abstract void RecordCore(AcceleratorStream stream);
    protected abstract void SynchronizeCore();
    protected abstract float ElapsedCore(AcceleratorEvent start);
    protected abstract void DisposeCore();

    protected void ThrowIfDisposed()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ObjectDisposedException.ThrowIf(Accelerator.IsDisposed, Accelerator);
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        Accelerator.Untrack(this);
        DisposeCore();
        GC.SuppressFinalize(this);
    }
}
