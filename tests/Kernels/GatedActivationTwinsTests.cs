using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.Activation;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// The CPU path of the gated activations (SiLU fused for BF16 and F32 where 512-bit vectors are native) against the
/// plain twin, <see cref="GatedActivation.RunCpuPlain"/>, bit for bit, for every kind and dtype. Widths around the
/// fused loop's 16-column step and below 4, where the library's sigmoid takes its scalar form.
/// </summary>
public class GatedActivationTwinsTests
{
    public static TheoryData<GatedActivationKind, DType, int, int, bool> Cases()
    {
        var data = new TheoryData<GatedActivationKind, DType, int, int, bool>();
        var shapes = new (int Rows, int Intermediate)[] { (0, 8), (1, 1), (2, 2), (3, 3), (3, 4), (2, 15), (2, 16), (5, 17), (3, 33), (2, 100), (1, 2053), (300, 7) };
        foreach (var kind in Enum.GetValues<GatedActivationKind>())
            foreach (var dtype in new[] { DType.F32, DType.BF16, DType.F16 })
                foreach (var (rows, intermediate) in shapes)
                    foreach (bool specials in new[] { false, true })
                        data.Add(kind, dtype, rows, intermediate, specials);
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void MatchesThePlainTwinBitForBit(GatedActivationKind kind, DType dtype, int rows, int intermediate, bool specials)
    {
        var cpu = TestDevices.Context.Cpu;
        var random = TestData.NewRandom(out int seed);
        // [-20, 20]: the sigmoid's saturated ends and its steep middle.
        using var gateUp = TwinBitsData.Upload(cpu, random, dtype, rows * 2 * intermediate, specials, -20f, 20f);
        using var expected = TokenOpsData.Poisoned(cpu, dtype, (long)rows * intermediate);
        using var actual = TokenOpsData.Poisoned(cpu, dtype, (long)rows * intermediate);
        GatedActivation.RunCpuPlain(kind, gateUp, rows, intermediate, expected);
        GatedActivation.Run(kind, gateUp, rows, intermediate, actual);
        Compare.Exact<uint>(TwinBitsData.Bits(expected), TwinBitsData.Bits(actual),
            $"{kind} {dtype} [{rows}, {intermediate}]{(specials ? " specials" : "")}, seed {seed}");
    }
}
