using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.Activation;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// act(gate) * up on every accelerator against a double-precision reference on the dtype-rounded inputs;
/// CUDA also against the CPU twin. Bound: the dtype's tolerance (F32 math, one rounding at the end).
/// </summary>
public class GatedActivationTests
{
    public static TheoryData<string, GatedActivationKind, DType, int, int> Cases()
    {
        var data = new TheoryData<string, GatedActivationKind, DType, int, int>();
        foreach (var device in TestDevices.Names)
            foreach (var kind in Enum.GetValues<GatedActivationKind>())
                foreach (var dtype in new[] { DType.F32, DType.BF16, DType.F16 })
                    foreach (var (rows, intermediate) in new[] { (0, 8), (1, 33), (17, 64), (5, 1000) })
                        data.Add(device, kind, dtype, rows, intermediate);
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void MatchesTheReference(string device, GatedActivationKind kind, DType dtype, int rows, int intermediate)
    {
        var accelerator = TestDevices.Get(device);
        var random = TestData.NewRandom(out int seed);
        var gateUp = TokenOpsData.RoundTo(dtype, TestData.Uniform(random, rows * 2 * intermediate, -6f, 6f));
        var actual = Run(accelerator, kind, dtype, gateUp, rows, intermediate);
        var expected = new double[rows * intermediate];
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < intermediate; i++)
            {
                double g = gateUp[r * 2 * intermediate + i], u = gateUp[r * 2 * intermediate + intermediate + i];
                double act = kind switch
                {
                    GatedActivationKind.Silu => g / (1 + Math.Exp(-g)),
                    GatedActivationKind.GeluTanh => 0.5 * g * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (g + 0.044715 * g * g * g))),
                    _ => 0.5 * g * (1 + GatedActivation.Erf(g / Math.Sqrt(2))),
                };
                expected[r * intermediate + i] = act * u;
            }
        string what = $"{kind} {dtype} [{rows}, {intermediate}] on {device}, seed {seed}";
        Compare.Close(expected, Compare.ToDouble(actual), Compare.ToleranceFor(dtype), what);
        if (accelerator.Kind != AcceleratorKind.Cpu)
            Compare.Close(Run(TestDevices.Context.Cpu, kind, dtype, gateUp, rows, intermediate), actual, Compare.ToleranceFor(dtype), $"{what}, against the CPU twin");
    }

    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void HandWorkedValues(string device)
    {
        var accelerator = TestDevices.Get(device);
        // silu(2) * 3 = 6 / (1 + e^-2) = 5.28478; gelu(1) = Phi(1) = 0.841345; tanh form: 0.841192; silu(-20) * 1 ~ -4.1e-8.
        Compare.Close(new[] { 5.284782f, -4.122307e-8f }, Run(accelerator, GatedActivationKind.Silu, DType.F32, new[] { 2f, -20f, 3f, 1f }, 1, 2), 1e-6, "silu");
        Compare.Close(new[] { 0.8413447f }, Run(accelerator, GatedActivationKind.GeluErf, DType.F32, new[] { 1f, 1f }, 1, 1), 1e-6, "gelu erf");
        Compare.Close(new[] { 0.8411920f }, Run(accelerator, GatedActivationKind.GeluTanh, DType.F32, new[] { 1f, 1f }, 1, 1), 1e-6, "gelu tanh");
    }

    /// <summary>The vectorised SiLU path of the twin against the plain scalar formula, element by element.</summary>
    [Fact]
    public void VectorisedSiluMatchesTheScalarFormula()
    {
        var random = TestData.NewRandom(out int seed);
        int rows = 3, intermediate = 77;
        var gateUp = TestData.Uniform(random, rows * 2 * intermediate, -30f, 30f);
        var actual = Run(TestDevices.Context.Cpu, GatedActivationKind.Silu, DType.F32, gateUp, rows, intermediate);
        var expected = new float[rows * intermediate];
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < intermediate; i++)
                expected[r * intermediate + i] = GatedActivation.Activate(GatedActivationKind.Silu, gateUp[r * 2 * intermediate + i]) * gateUp[r * 2 * intermediate + intermediate + i];
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-6 * Math.Max(1, Math.Abs(expected[i])), $"[{i}] expected {expected[i]}, actual {actual[i]} (seed {seed})");
    }

    [Fact]
    public void ErfMatchesTabulatedValues()
    {
        // Abramowitz and Stegun, table 7.1 (and erf(5) = 1 - 1.5375e-12).
        var table = new (double X, double Erf)[]
        {
            (0, 0), (0.1, 0.1124629160), (0.5, 0.5204998778), (1, 0.8427007929), (1.5, 0.9661051465),
            (2, 0.9953222650), (3, 0.9999779095), (5, 0.9999999999984626), (-1, -0.8427007929), (7, 1),
        };
        foreach (var (x, erf) in table)
            Assert.Equal(erf, GatedActivation.Erf(x), 9);
    }

    [Fact]
    public void BadInputIsRejected()
    {
        var cpu = TestDevices.Context.Cpu;
        using var gateUp = cpu.Allocate<float>(2 * 16);
        using var output = cpu.Allocate<float>(2 * 8);
        using var halfOutput = cpu.Allocate<Half>(2 * 8);
        using var ints = cpu.Allocate<int>(2 * 16);
        Assert.Equal("output", Assert.ThrowsAny<ArgumentException>(() => GatedActivation.Run(GatedActivationKind.Silu, gateUp, 2, 8, halfOutput)).ParamName);
        Assert.Equal("gateUp", Assert.ThrowsAny<ArgumentException>(() => GatedActivation.Run(GatedActivationKind.Silu, gateUp, 3, 8, output)).ParamName);
        Assert.Equal("gateUp", Assert.ThrowsAny<ArgumentException>(() => GatedActivation.Run(GatedActivationKind.Silu, ints, 2, 8, output)).ParamName);
        Assert.Equal("intermediate", Assert.ThrowsAny<ArgumentException>(() => GatedActivation.Run(GatedActivationKind.Silu, gateUp, 2, 0, output)).ParamName);
        Assert.Equal("kind", Assert.ThrowsAny<ArgumentException>(() => GatedActivation.Run((GatedActivationKind)7, gateUp, 2, 8, output)).ParamName);
    }

    private static float[] Run(Accelerator accelerator, GatedActivationKind kind, DType dtype, float[] gateUp, int rows, int intermediate)
    {
        using var input = TokenOpsData.Upload(accelerator, dtype, gateUp);
        using var output = TokenOpsData.Poisoned(accelerator, dtype, (long)rows * intermediate);
        GatedActivation.Run(kind, input, rows, intermediate, output);
        return TokenOpsData.Download(output);
    }
}
