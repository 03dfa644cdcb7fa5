namespace MoeRuntime.Accelerators;

/// <summary>
/// What a stream and an event share: the accelerator that made them, which tracks them (disposing it disposes them), and
/// a Dispose that releases once; after it, or once the accelerator is gone, every call throws ObjectDisposedException.
/// </summary>
public abstract class AcceleratorChild : IDisposable
{
    private bool _disposed;

    private protected AcceleratorChild(Accelerator accelerator) => Accelerator = accelerator;

    public Accelerator Accelerator { get; }
    public bool IsDisposed => _disposed;

    public void ThrowIfDisposed()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ObjectDisposedException.ThrowIf(Accelerator.IsDisposed, Accelerator);
    }

    /// <summary>Releases the backend's handle; called once.</summary>
    protected abstract void DisposeCore();

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
