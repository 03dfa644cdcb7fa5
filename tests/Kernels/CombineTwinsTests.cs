using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.Permute;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// The CPU path of combine (fused for BF16 and F32 where 512-bit vectors are native) against the plain twin,
/// <see cref="Combine.RunCpuPlain"/>, bit for bit: same F32 sums in slot order, same roundings. Hidden sizes around
/// the fused loop's 64- and 16-column steps, dropped slots (-1, past the end, int extremes), a token with none kept.
/// </summary>
public class CombineTwinsTests
{
    public static TheoryData<int, int, int, DType, bool, bool> Cases()
    {
        var data = new TheoryData<int, int, int, DType, bool, bool>();
        var shapes = new (int Tokens, int TopK, int Hidden)[]
        {
            (0, 2, 64), (1, 1, 1), (3, 8, 15), (7, 4, 16), (5, 8, 17), (9, 3, 63), (4, 8, 64), (6, 2, 65), (33, 8, 100), (3, 8, 4103), (1200, 2, 3),
        };
        foreach (var dtype in new[] { DType.F32, DType.BF16, DType.F16 })
            foreach (var (tokens, topK, hidden) in shapes)
                foreach (bool residual in new[] { false, true })
                    foreach (bool specials in new[] { false, true })
                        data.Add(tokens, topK, hidden, dtype, residual, specials);
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void MatchesThePlainTwinBitForBit(int tokens, int topK, int hidden, DType dtype, bool residual, bool specials)
    {
        var cpu = TestDevices.Context.Cpu;
        var random = TestData.NewRandom(out int seed);
        int slots = tokens * topK, rows = slots + 5;
        var rowOfSlot = Enumerable.Range(0, rows).OrderBy(_ => random.Next()).Take(slots).ToArray();
        int[] dropped = [-1, rows, rows + 2, int.MinValue, int.MaxValue];
        for (int s = 0; s < slots; s++)
            if (random.Next(4) == 0 || s / topK == tokens - 1 && tokens > 1) // the last token keeps no slot
                rowOfSlot[s] = dropped[random.Next(dropped.Length)];
        var weights = TestData.Uniform(random, slots);
        if (specials)
            for (int s = 0; s < slots; s++)
                if (random.Next(10) == 0)
                    weights[s] = random.Next(2) == 0 ? 0f : -0f;

        using var expertOutput = TwinBitsData.Upload(cpu, random, dtype, rows * hidden, specials);
        using var residualBuffer = residual ? TwinBitsData.Upload(cpu, random, dtype, tokens * hidden, specials) : null;
        using var rowsBuffer = cpu.Upload<int>(rowOfSlot);
        using var weightsBuffer = cpu.Upload<float>(weights);
        using var expected = TokenOpsData.Poisoned(cpu, dtype, (long)tokens * hidden);
        using var actual = TokenOpsData.Poisoned(cpu, dtype, (long)tokens * hidden);
        Combine.RunCpuPlain(expertOutput, rows, rowsBuffer, weightsBuffer, tokens, topK, hidden, expected, residualBuffer);
        Combine.Run(expertOutput, rowsBuffer, weightsBuffer, tokens, topK, hidden, actual, residualBuffer);
        Compare.Exact<uint>(TwinBitsData.Bits(expected), TwinBitsData.Bits(actual),
            $"T={tokens} k={topK} H={hidden} {dtype}{(residual ? " residual" : "")}{(specials ? " specials" : "")}, seed {seed}");
    }
}
