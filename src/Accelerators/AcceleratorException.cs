namespace MoeRuntime.Accelerators;

/// <summary>A failure of an accelerator, its memory, a kernel compile or launch, or a native call behind them.</summary>
public class AcceleratorException : Exception
{
    public AcceleratorException(string message) : base(message) { }
    public AcceleratorException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>An allocation that did not fit: says how much was asked and how much was free.</summary>
public sealed class AcceleratorOutOfMemoryException : AcceleratorException
{
    public AcceleratorOutOfMemoryException(string accelerator, long requestedBytes, long freeBytes, long totalBytes)
        : base($"{accelerator}: out of memory allocating {Format(requestedBytes)} ({requestedBytes} bytes); " +
               $"{Format(freeBytes)} free of {Format(totalBytes)}")
    {
        RequestedBytes = requestedBytes;
        FreeBytes = freeBytes;
    }

    public long RequestedBytes { get; }
    public long FreeBytes { get; }

    internal static string Format(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):F2} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):F2} MiB",
        >= 1L << 10 => $"{bytes / 1024.0:F2} KiB",
        _ => $"{bytes} B",
    };
}
