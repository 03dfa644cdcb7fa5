namespace MoeRuntime.Kernels.Activation;

public static partial class Sigmoid
{
    /// <summary>The CPU twin: the plain loop.</summary>
    internal static void RunCpu(Span<float> values)
    {
        for (int i = 0; i < values.Length; i++)
            values[i] = 1f / (1f + MathF.Exp(-values[i]));
    }
}
