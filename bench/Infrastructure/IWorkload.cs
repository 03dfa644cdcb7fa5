namespace MoeRuntime.Benchmarks.Infrastructure;

/// <summary>
/// A benchmark that says how much work one invocation does, so the report can show GB/s and TFLOP/s.
/// The columns build a fresh instance with the case's parameters set and read these properties.
/// </summary>
public interface IWorkload
{
    /// <summary>Bytes the operation must move through memory (each input read once, each output written once).</summary>
    double Bytes { get; }

    /// <summary>Floating-point operations of one invocation (0 for pure data movement).</summary>
    double Flops { get; }
}
