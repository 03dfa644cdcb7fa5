using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.Permute;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// Combine on every accelerator against a double-precision reference on the same (dtype-rounded) inputs;
/// the CUDA kernel also against the CPU twin. Bound: the output dtype's tolerance (F32 accumulation, one
/// rounding to the output dtype at the end).
/// </summary>
public class CombineTests
{
    public sealed record Case(string Name, int Tokens, int TopK, int Hidden, DType DType, bool Residual = false, bool Dropped = false)
    {
        public override string ToString() => Name;
    }

    public static TheoryData<string, Case> Cases()
    {
        var cases = new[]
        {
            new Case("mixtral k2 bf16 H256", 64, 2, 256, DType.BF16),
            new Case("no tokens", 0, 2, 64, DType.F32),
            new Case("T1 k8 f16 H512", 1, 8, 512, DType.F16),
            new Case("odd H 33 f32 residual", 37, 8, 33, DType.F32, Residual: true),
            new Case("bf16 H72 residual", 50, 4, 72, DType.BF16, Residual: true),
            new Case("bf16 H30 (scalar path)", 20, 2, 30, DType.BF16),
            new Case("f16 H7 odd", 9, 3, 7, DType.F16, Residual: true),
            new Case("dropped slots f32", 40, 4, 64, DType.F32, Dropped: true),
            new Case("k1 f32 H4", 13, 1, 4, DType.F32),
            // Few tokens with long rows: on a GPU each row spreads over several blocks (Combine.ChunksPerToken).
            new Case("T3 k8 bf16 H7168 (row over blocks)", 3, 8, 7168, DType.BF16),
            new Case("T5 k4 f32 H1000 residual dropped (last chunk partial)", 5, 4, 1000, DType.F32, Residual: true, Dropped: true),
            new Case("T2 k2 f16 H4104 (513 packs)", 2, 2, 4104, DType.F16, Residual: true),
        };
        return TestDevices.Each(cases);
    }

    [Theory, MemberData(nameof(Cases))]
    public void MatchesTheReference(string device, Case c)
    {
        var accelerator = TestDevices.Get(device);
        var random = TestData.NewRandom(out int seed);
        int slots = c.Tokens * c.TopK;
        int rows = slots + 5; // a few rows no slot points at, like padding rows
        var expertOutput = TokenOpsData.RoundTo(c.DType, TestData.Uniform(random, rows * c.Hidden));
        var rowOfSlot = Enumerable.Range(0, rows).OrderBy(_ => random.Next()).Take(slots).ToArray();
        if (c.Dropped)
            for (int s = 0; s < slots; s++)
                if (random.Next(4) == 0)
                    rowOfSlot[s] = random.Next(2) == 0 ? -1 : rows + random.Next(3);
        var weights = TestData.Uniform(random, slots, 0.05f, 1f);
        var residual = c.Residual ? TokenOpsData.RoundTo(c.DType, TestData.Uniform(random, c.Tokens * c.Hidden)) : null;

        var actual = RunCombine(accelerator, c, expertOutput, rowOfSlot, weights, residual);
        var expected = new double[c.Tokens * c.Hidden];
        for (int t = 0; t < c.Tokens; t++)
            for (int h = 0; h < c.Hidden; h++)
            {
                double sum = residual?[t * c.Hidden + h] ?? 0;
                for (int j = 0; j < c.TopK; j++)
                {
                    int row = rowOfSlot[t * c.TopK + j];
                    if (row >= 0 && row < rows)
                        sum += (double)weights[t * c.TopK + j] * expertOutput[row * c.Hidden + h];
                }
                expected[t * c.Hidden + h] = sum;
            }
        string what = $"{c.Name} on {device}, seed {seed}";
        Compare.Close(expected, Compare.ToDouble(actual), Compare.ToleranceFor(c.DType), what);
        if (accelerator.Kind != AcceleratorKind.Cpu)
            Compare.Close(RunCombine(TestDevices.Context.Cpu, c, expertOutput, rowOfSlot, weights, residual), actual,
                Compare.ToleranceFor(c.DType), $"{what}, against the CPU twin");
    }

    /// <summary>
    /// Permute then combine with the identity as every expert: each token comes back times the sum of its
    /// weights (F32: only rounding in the sum of k products).
    /// </summary>
    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void PermuteThenCombineOfTheIdentityScalesByTheWeightSum(string device)
    {
        var accelerator = TestDevices.Get(device);
        var random = TestData.NewRandom(out int seed);
        foreach (var (tokens, topK, experts, hidden, blockSize) in new[] { (70, 2, 8, 36, 1), (33, 8, 128, 33, 16), (1, 4, 4, 8, 4) })
        {
            var ids = TokenOpsData.RandomIds(random, tokens, topK, experts, "uniform");
            var x = TestData.Uniform(random, tokens * hidden);
            var w = TestData.Uniform(random, tokens * topK, 0.1f, 1f);
            long capacity = Permute.RowCapacity(tokens, topK, experts, blockSize);
            using var idsBuffer = accelerator.Upload<int>(ids);
            using var xBuffer = accelerator.Upload<float>(x);
            using var wBuffer = accelerator.Upload<float>(w);
            using var counts = accelerator.Allocate<int>(experts);
            using var offsets = accelerator.Allocate<int>(experts + 1);
            using var rowOfSlot = accelerator.Allocate<int>(tokens * topK);
            using var tokenOfRow = accelerator.Allocate<int>(capacity);
            using var gathered = TokenOpsData.Poisoned<float>(accelerator, capacity * hidden);
            using var output = TokenOpsData.Poisoned<float>(accelerator, tokens * hidden);
            Permute.Run(idsBuffer, tokens, topK, experts, blockSize, counts, offsets, rowOfSlot, tokenOfRow, xBuffer, hidden, gathered);
            Combine.Run(gathered, rowOfSlot, wBuffer, tokens, topK, hidden, output);
            var expected = new float[tokens * hidden];
            for (int t = 0; t < tokens; t++)
            {
                float weightSum = w.AsSpan(t * topK, topK).ToArray().Sum();
                for (int h = 0; h < hidden; h++)
                    expected[t * hidden + h] = x[t * hidden + h] * weightSum;
            }
            Compare.Close(expected, output.ToArray(), Compare.F32Tolerance, $"identity experts T={tokens} k={topK} E={experts} on {device}, seed {seed}");
        }
    }

    [Fact]
    public void BadInputIsRejected()
    {
        var cpu = TestDevices.Context.Cpu;
        using var expertOutput = cpu.Allocate<float>(4 * 8);
        using var rowOfSlot = cpu.Allocate<int>(4);
        using var weights = cpu.Allocate<float>(4);
        using var output = cpu.Allocate<float>(2 * 8);
        using var halfOutput = cpu.Allocate<Half>(2 * 8);
        using var intOutput = cpu.Allocate<int>(4 * 8);
        Assert.Equal("output", Assert.ThrowsAny<ArgumentException>(() => Combine.Run(expertOutput, rowOfSlot, weights, 2, 2, 8, halfOutput)).ParamName);
        Assert.Equal("output", Assert.ThrowsAny<ArgumentException>(() => Combine.Run(expertOutput, rowOfSlot, weights, 2, 2, 9, output)).ParamName);
        Assert.Equal("rowOfSlot", Assert.ThrowsAny<ArgumentException>(() => Combine.Run(expertOutput, rowOfSlot, weights, 2, 3, 8, output)).ParamName);
        Assert.Equal("residual", Assert.ThrowsAny<ArgumentException>(() => Combine.Run(expertOutput, rowOfSlot, weights, 2, 2, 8, output, halfOutput)).ParamName);
        Assert.Equal("expertOutput", Assert.ThrowsAny<ArgumentException>(() => Combine.Run(intOutput, rowOfSlot, weights, 2, 2, 8, output)).ParamName);
        Assert.Equal("topK", Assert.ThrowsAny<ArgumentException>(() => Combine.Run(expertOutput, rowOfSlot, weights, 2, 0, 8, output)).ParamName);
    }

    [Fact]
    public void ChunksPerTokenFillTheDeviceWithFewTokensAndStayOneForMany()
    {
        Assert.Equal(1, Combine.ChunksPerToken(8192, 1792, 132));  // prefill: one block per token
        Assert.Equal(9, Combine.ChunksPerToken(128, 1792, 132));   // DeepSeek-V3 T=128 f32: 1056 blocks wanted
        Assert.Equal(14, Combine.ChunksPerToken(1, 1792, 132));    // never more chunks than 128-pack slices of a row
        Assert.Equal(1, Combine.ChunksPerToken(3, 33, 132));       // a row shorter than a block
        Assert.Equal(1, Combine.ChunksPerToken(0, 1792, 132));
    }

    private static float[] RunCombine(Accelerator accelerator, Case c, float[] expertOutput, int[] rowOfSlot, float[] weights, float[]? residual)
    {
        using var expertBuffer = TokenOpsData.Upload(accelerator, c.DType, expertOutput);
        using var rowsBuffer = accelerator.Upload<int>(rowOfSlot);
        using var weightsBuffer = accelerator.Upload<float>(weights);
        using var residualBuffer = residual is null ? null : TokenOpsData.Upload(accelerator, c.DType, residual);
        using var output = TokenOpsData.Poisoned(accelerator, c.DType, c.Tokens * c.Hidden);
        Combine.Run(expertBuffer, rowsBuffer, weightsBuffer, c.Tokens, c.TopK, c.Hidden, output, residualBuffer);
        return TokenOpsData.Download(output);
    }
}
