namespace MoeRuntime.Kernels.Routing;

/// <summary>The routing sigmoid's exp, bit for bit routing_exp in topk_routing.cu.</summary>
public static partial class TopKRouting
{
    /// <summary>
    /// exp(a) from IEEE operations alone, in the kernel's order: MathF.Exp (the host's expf) and CUDA's expf (up to
    /// 2 ulp off) differ in the last bit now and then, and one ulp of exp(-x) can move a key by an ulp and swap two
    /// nearly tied choices (seed 59463: 1 + exp(-2.078125) lies 0.1 ulp below a rounding midpoint).
    /// a = j ln2 + f with j = rint(a log2e); exp(f) by its degree-7 Taylor polynomial; times 2^j in two exact steps.
    /// </summary>
    internal static float RoutingExp(float a)
    {
        a = a < -104f ? -104f : (a > 89f ? 89f : a); // NaN stays NaN
        float j = MathF.FusedMultiplyAdd(a, 1.44269502f, 12582912f) - 12582912f;
        float f = MathF.FusedMultiplyAdd(j, -0.693145752f, a);
        f = MathF.FusedMultiplyAdd(j, -1.42860677e-6f, f);
        float p = 1.98412701e-4f;
        p = MathF.FusedMultiplyAdd(p, f, 1.38888892e-3f);
        p = MathF.FusedMultiplyAdd(p, f, 8.33333377e-3f);
        p = MathF.FusedMultiplyAdd(p, f, 4.16666679e-2f);
        p = MathF.FusedMultiplyAdd(p, f, 1.66666672e-1f);
        p = MathF.FusedMultiplyAdd(p, f, 0.5f);
        p = MathF.FusedMultiplyAdd(p, f, 1f);
        p = MathF.FusedMultiplyAdd(p, f, 1f);
        int n = float.IsNaN(a) ? 0 : (int)j;
        int half = n >> 1; // floor: both halves in [-75, 64]
        return p * BitConverter.Int32BitsToSingle((half + 127) << 23) * BitConverter.Int32BitsToSingle((n - half + 127) << 23);
    }
}
