namespace MoeRuntime.Accelerators;

/// <summary>An ordered queue of work on one accelerator. The CPU runs work as it is enqueued.</summary>
public abstract class AcceleratorStream : AcceleratorChild
{
    protected AcceleratorStream(Accelerator accelerator) : base(accelerator) { }

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
}

/// <summary>A point in a stream's work: record it, wait on it, time between two of them.</summary>
public abstract class AcceleratorEvent : AcceleratorChild
{
    protected AcceleratorEvent(Accelerator accelerator) : base(accelerator) { }

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
}
