using FsCheck;
using FsCheck.Fluent;
using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.Permute;
using MoeRuntime.Tests.Infrastructure;
using TestData = MoeRuntime.Tests.Infrastructure.TestData;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// Permute on every accelerator against a reference written as "for each expert, its slots in order";
/// the CUDA kernels also against the CPU twin. Everything is exact here: indices and copied rows.
/// </summary>
// Permute.ForceThreeKernels is process-wide: a class that sets it runs alone (ProcessSwitches).
[Collection(ProcessSwitches.Name)]
public class PermuteTests
{
    public sealed record Case(string Name, int Tokens, int TopK, int Experts, int Hidden, int BlockSize, DType DType, string Skew = "uniform")
    {
        public override string ToString() => Name;
    }

    public static TheoryData<string, Case> Cases()
    {
        var cases = new[]
        {
            new Case("mixtral E8 k2 bf16", 300, 2, 8, 64, 1, DType.BF16),
            new Case("no tokens", 0, 2, 8, 16, 1, DType.F32),
            new Case("no tokens padded", 0, 2, 8, 16, 16, DType.BF16),
            new Case("T1 E128 k8 f16 odd H", 1, 8, 128, 33, 1, DType.F16),
            new Case("odd H 33 f32 padded 16", 77, 8, 128, 33, 16, DType.F32),
            new Case("all tokens to expert 0", 200, 1, 8, 8, 1, DType.BF16, "one"),
            new Case("first choice expert 0, E256 k8, pad 128", 150, 8, 256, 40, 128, DType.BF16, "one"),
            new Case("upper half of experts empty", 120, 4, 64, 16, 8, DType.F16, "half"),
            new Case("E512 k16", 50, 16, 512, 8, 1, DType.F32),
            new Case("many chunks E128 k8", 1000, 8, 128, 24, 1, DType.BF16),
            // More chunks of 512 slots than the offsets scan batches at once (32), the last batch and chunk partial.
            new Case("37 chunks E256 k8 pad 8", 2333, 8, 256, 8, 8, DType.BF16),
            new Case("33 chunks E64 k2 skewed", 8400, 2, 64, 4, 1, DType.F32, "one"),
            new Case("top-E", 40, 8, 8, 12, 3, DType.F32),
            new Case("dropped ids", 100, 2, 8, 8, 4, DType.F32, "dropped"),
            new Case("f16 odd H 7", 70, 2, 8, 7, 1, DType.F16),
            // Around the fused offsets+scatter threshold (chunks x ceil(E / 128) <= 128, Permute.FusedMaxCountsPerThread).
            new Case("sweep shape T8192 k2 E256 (fused)", 8192, 2, 256, 4, 1, DType.BF16),
            new Case("E512 k16 32 chunks pad 64 (fused, at the threshold)", 1024, 16, 512, 4, 64, DType.BF16),
            new Case("E512 k16 33 chunks pad 4 (three kernels)", 1056, 16, 512, 4, 4, DType.F16),
            new Case("E128 k8 128 chunks pad 16 (fused, at the threshold)", 8192, 8, 128, 2, 16, DType.F32, "half"),
            new Case("E128 k8 129 chunks skewed (three kernels)", 8200, 8, 128, 2, 1, DType.F32, "one"),
            new Case("E8 k2 128 chunks dropped pad 5 (fused)", 32768, 2, 8, 2, 5, DType.F32, "dropped"),
            new Case("E64 k2 T64K 256 chunks pad 32 (three kernels)", 65536, 2, 64, 1, 32, DType.BF16),
            new Case("E512 k4 1 chunk partial, pad 3 (fused)", 100, 4, 512, 4, 3, DType.F32),
        };
        return TestDevices.Each(cases);
    }

    /// <summary>
    /// Random ids for a case; skew "dropped": uniform ids of which about a fifth are out of range (-1, or E up to
    /// E + <paramref name="droppedSpread"/> - 1), which permute must drop.
    /// </summary>
    private static int[] RandomIds(Random random, Case c, int droppedSpread)
    {
        var ids = TokenOpsData.RandomIds(random, c.Tokens, c.TopK, c.Experts, c.Skew == "dropped" ? "uniform" : c.Skew);
        if (c.Skew == "dropped")
            for (int i = 0; i < ids.Length; i++)
                if (random.Next(5) == 0)
                    ids[i] = random.Next(2) == 0 ? -1 : c.Experts + random.Next(droppedSpread);
        return ids;
    }

    [Theory, MemberData(nameof(Cases))]
    public void MatchesTheReference(string device, Case c)
    {
        var accelerator = TestDevices.Get(device);
        var random = TestData.NewRandom(out int seed);
        var ids = RandomIds(random, c, droppedSpread: 3);
        var hidden = TokenOpsData.RoundTo(c.DType, TestData.Uniform(random, c.Tokens * c.Hidden));
        string what = $"{c.Name} on {device}, seed {seed}";

        var actual = RunPermute(accelerator, c, ids, hidden);
        var expected = Reference(c, ids, hidden);
        AssertSame(expected, actual, what);
        if (accelerator.Kind != AcceleratorKind.Cpu)
            AssertSame(RunPermute(TestDevices.Context.Cpu, c, ids, hidden), actual, $"{what}, against the CPU twin");
    }

    /// <summary>The fused offsets+scatter kernel and the three-kernel path give the same outputs on shapes the fused one takes.</summary>
    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void TheFusedAndThreeKernelIndexPathsAgree(string device) =>
        AssertPathsAgree(device, "fused", "three kernels",
            c => Permute.UsesFusedPlacement((c.Tokens * (long)c.TopK + 511) / 512, c.Experts),
            on => Permute.ForceThreeKernels = on,
            keepOneKernelOff: true, // "paths no tokens" would take the one-kernel path
            new Case("paths T8192 k2 E256", 8192, 2, 256, 2, 1, DType.BF16),
            new Case("paths E512 k16 32 chunks pad 128", 1024, 16, 512, 2, 128, DType.F32, "half"),
            new Case("paths E8 k2 128 chunks dropped pad 7", 32768, 2, 8, 2, 7, DType.F32, "dropped"),
            new Case("paths 5 chunks E96 k6 pad 2", 400, 6, 96, 3, 2, DType.F16, "one"),
            new Case("paths no tokens pad 8", 0, 2, 16, 2, 8, DType.F32));

    /// <summary>
    /// The one-kernel path (one chunk of slots, at most 2048 rows: every block orders the slots itself) gives what the
    /// separate kernels give, at decode shapes, at the limits (512 slots; 2048 rows) and with padding and dropped ids.
    /// </summary>
    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void TheOneKernelAndSeparatePathsAgree(string device) =>
        AssertPathsAgree(device, "one kernel", "separate kernels",
            c => Permute.UsesOneKernel((long)c.Tokens * c.TopK, Permute.RowCapacity(c.Tokens, c.TopK, c.Experts, c.BlockSize)),
            on => Permute.ForceSeparateKernels = on,
            keepOneKernelOff: false,
            new Case("one T1 E128 k8 (Qwen3 decode)", 1, 8, 128, 40, 1, DType.BF16),
            new Case("one T16 E8 k2 (Mixtral decode) odd H", 16, 2, 8, 33, 1, DType.F16),
            new Case("one T64 E256 k8: 512 slots", 64, 8, 256, 16, 1, DType.BF16, "one"),
            new Case("one E512 k4 pad 4: 2048 rows", 128, 4, 512, 8, 4, DType.F32, "half"),
            new Case("one dropped pad 3", 50, 4, 64, 6, 3, DType.F32, "dropped"),
            new Case("one no tokens pad 8", 0, 2, 16, 4, 8, DType.BF16));

    // For each case (which the default path must take): the default path and the other one (the switch on) give the
    // same outputs, and the default path those of the reference.
    private static void AssertPathsAgree(string device, string name, string otherName, Func<Case, bool> takesDefault,
                                         Action<bool> otherPath, bool keepOneKernelOff, params Case[] cases)
    {
        var accelerator = TestDevices.Get(device);
        var random = TestData.NewRandom(out int seed);
        foreach (var c in cases)
        {
            Assert.True(takesDefault(c), $"{c.Name} does not take the {name} path");
            var ids = RandomIds(random, c, droppedSpread: 3);
            var hidden = TokenOpsData.RoundTo(c.DType, TestData.Uniform(random, c.Tokens * c.Hidden));
            Result chosen, other;
            Permute.ForceSeparateKernels = keepOneKernelOff;
            try
            {
                chosen = RunPermute(accelerator, c, ids, hidden);
                otherPath(true);
                other = RunPermute(accelerator, c, ids, hidden);
            }
            finally
            {
                otherPath(false);
                Permute.ForceSeparateKernels = false;
            }
            string what = $"{c.Name} on {device}, seed {seed}";
            AssertSame(other, chosen, $"{name} against {otherName}, {what}");
            AssertSame(Reference(c, ids, hidden), chosen, $"{name} against the reference, {what}");
        }
    }

    [Fact]
    public void TheOneKernelPathIsTakenForOneChunkAndFewRowsOnly()
    {
        Assert.True(Permute.UsesOneKernel(8, 8));       // Qwen3 / DeepSeek-V3 T=1
        Assert.True(Permute.UsesOneKernel(512, 512));   // T=64 k=8
        Assert.False(Permute.UsesOneKernel(513, 513));  // two chunks
        Assert.True(Permute.UsesOneKernel(512, 2048));  // padded to the table's size
        Assert.False(Permute.UsesOneKernel(512, 2049));
        Assert.True(Permute.UsesOneKernel(0, 0));
        Assert.Equal(1, Permute.Launches(1, 8, 128, gather: true));
        Assert.Equal(3, Permute.Launches(128, 8, 128, gather: true)); // 1024 slots: counts, offsets+scatter, gather
    }

    /// <summary>
    /// The scatter's same-expert masks by ballots (the default) and by the match.any instruction (MOE_PERMUTE_MATCH=
    /// instruction) give the same outputs, on the fused and the three-kernel index paths: expert ids up to 511 (all ten
    /// label bits), dropped ids (-1 and >= experts, label 1023 and the rest), every slot on one expert.
    /// </summary>
    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void BallotAndMatchInstructionMasksAgree(string device)
    {
        var accelerator = TestDevices.Get(device);
        var random = TestData.NewRandom(out int seed);
        foreach (var c in new[]
                 {
                     new Case("match T8192 k2 E256", 8192, 2, 256, 2, 1, DType.BF16),
                     new Case("match E512 k16 pad 128 dropped", 1024, 16, 512, 2, 128, DType.F32, "dropped"),
                     new Case("match E512 k8 many chunks", 9000, 8, 512, 2, 1, DType.F32),
                     new Case("match E8 k2 dropped pad 7", 32768, 2, 8, 2, 7, DType.F32, "dropped"),
                     new Case("match all on one expert", 3000, 1, 64, 3, 1, DType.F16, "all"),
                 })
        {
            var ids = c.Skew == "all" ? Enumerable.Repeat(37, c.Tokens * c.TopK).ToArray() : RandomIds(random, c, droppedSpread: 600);
            var hidden = TokenOpsData.RoundTo(c.DType, TestData.Uniform(random, c.Tokens * c.Hidden));
            string what = $"{c.Name} on {device}, seed {seed}";
            foreach (bool three in new[] { false, true })
            {
                Permute.ForceThreeKernels = three;
                try
                {
                    var ballots = RunPermute(accelerator, c, ids, hidden);
                    Result instruction;
                    Permute.MatchInstruction = true;
                    try
                    {
                        instruction = RunPermute(accelerator, c, ids, hidden);
                    }
                    finally
                    {
                        Permute.MatchInstruction = false;
                    }
                    string path = three ? "three kernels" : "default path";
                    AssertSame(instruction, ballots, $"ballots against match.any, {path}, {what}");
                    AssertSame(Reference(c, ids, hidden), ballots, $"ballots against the reference, {path}, {what}");
                }
                finally
                {
                    Permute.ForceThreeKernels = false;
                }
            }
        }
    }

    [Fact]
    public void TheFusedPathIsTakenForFewChunksOnly()
    {
        Assert.True(Permute.UsesFusedPlacement(32, 256));    // T=8192 k=2 E=256, the sweep's shape
        Assert.True(Permute.UsesFusedPlacement(32, 512));
        Assert.False(Permute.UsesFusedPlacement(33, 512));
        Assert.True(Permute.UsesFusedPlacement(128, 128));   // T=8192 k=8 E=128
        Assert.False(Permute.UsesFusedPlacement(128, 256));  // T=8192 k=8 E=256
        Assert.False(Permute.UsesFusedPlacement(2048, 512)); // T=64K k=16 E=512
        Assert.True(Permute.UsesFusedPlacement(0, 8));
    }

    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void HandWorkedExample(string device)
    {
        var accelerator = TestDevices.Get(device);
        int[] ids = { 2, 0, 0, 1, 2, 0 }; // T = 3, k = 2, E = 3 (the example in Permute's documentation)
        float[] hidden = { 0, 1, 10, 11, 20, 21 };
        var plain = RunPermute(accelerator, new Case("hand", 3, 2, 3, 2, 1, DType.F32), ids, hidden);
        Assert.Equal(new[] { 3, 1, 2 }, plain.Counts);
        Assert.Equal(new[] { 0, 3, 4, 6 }, plain.Offsets);
        Assert.Equal(new[] { 4, 0, 1, 3, 5, 2 }, plain.RowOfSlot);
        Assert.Equal(new[] { 0, 1, 2, 1, 0, 2 }, plain.TokenOfRow);
        Assert.Equal(new float[] { 0, 1, 10, 11, 20, 21, 10, 11, 0, 1, 20, 21 }, plain.Gathered);

        var padded = RunPermute(accelerator, new Case("hand", 3, 2, 3, 2, 4, DType.F32), ids, hidden);
        Assert.Equal(new[] { 3, 1, 2 }, padded.Counts);
        Assert.Equal(new[] { 0, 4, 8, 12 }, padded.Offsets);
        Assert.Equal(new[] { 8, 0, 1, 4, 9, 2 }, padded.RowOfSlot);
        Assert.Equal(new[] { 0, 1, 2, -1, 1, -1, -1, -1, 0, 2, -1, -1, -1, -1, -1 }, padded.TokenOfRow);
        Assert.Equal(new float[] { 0, 1, 10, 11, 20, 21, 0, 0, 10, 11, 0, 0, 0, 0, 0, 0, 0, 1, 20, 21, 0, 0, 0, 0 }, padded.Gathered);
    }

    /// <summary>The invariants of the expert order, on random routings (with dropped ids) through the CPU twin.</summary>
    [Fact]
    public void TheOrderIsAStablePermutationOfTheValidSlots()
    {
        var gen =
            from tokens in Gen.Choose(0, 40)
            from experts in Gen.Choose(1, 12)
            from topK in Gen.Choose(1, experts)
            from blockSize in Gen.Choose(1, 5)
            from ids in Gen.ArrayOf(Gen.Choose(-1, experts), tokens * topK)
            select (tokens, experts, topK, blockSize, ids);
        Prop.ForAll(gen.ToArbitrary(), input =>
        {
            var (tokens, experts, topK, blockSize, ids) = input;
            var r = RunPermute(TestDevices.Context.Cpu, new Case("property", tokens, topK, experts, 1, blockSize, DType.F32), ids, new float[tokens]);
            int valid = ids.Count(id => id >= 0 && id < experts);
            Assert.Equal(0, r.Offsets[0]);
            for (int e = 0; e < experts; e++)
            {
                Assert.Equal(ids.Count(id => id == e), r.Counts[e]);
                Assert.Equal((r.Counts[e] + blockSize - 1) / blockSize * blockSize, r.Offsets[e + 1] - r.Offsets[e]);
            }
            var seen = new HashSet<int>();
            var lastRow = Enumerable.Repeat(-1, experts).ToArray();
            for (int slot = 0; slot < ids.Length; slot++)
            {
                int id = ids[slot], row = r.RowOfSlot[slot];
                if (id < 0 || id >= experts)
                {
                    Assert.Equal(-1, row);
                    continue;
                }
                Assert.True(seen.Add(row), $"row {row} used twice");
                Assert.InRange(row, r.Offsets[id], r.Offsets[id] + r.Counts[id] - 1);
                Assert.True(row > lastRow[id], "token order within an expert is kept");
                lastRow[id] = row;
                Assert.Equal(slot / topK, r.TokenOfRow[row]);
            }
            Assert.Equal(r.TokenOfRow.Length - valid, r.TokenOfRow.Count(t => t == -1));
        }).QuickCheckThrowOnFailure();
    }

    [Fact]
    public void BadInputIsRejected()
    {
        var cpu = TestDevices.Context.Cpu;
        using var ids = cpu.Upload<int>(new[] { 0, 1, 1, 0 });
        using var counts = cpu.Allocate<int>(2);
        using var offsets = cpu.Allocate<int>(3);
        using var rowOfSlot = cpu.Allocate<int>(4);
        using var tokenOfRow = cpu.Allocate<int>(4);
        using var hidden = cpu.Allocate<float>(2 * 8);
        using var gathered = cpu.Allocate<float>(4 * 8);
        using var gatheredHalf = cpu.Allocate<Half>(4 * 8);
        using var intHidden = cpu.Allocate<int>(2 * 8);
        Assert.Equal("topK", Assert.ThrowsAny<ArgumentException>(() => Permute.Run(ids, 2, 3, 2, 1, counts, offsets, rowOfSlot, tokenOfRow)).ParamName);
        Assert.Equal("experts", Assert.ThrowsAny<ArgumentException>(() => Permute.Run(ids, 2, 2, 513, 1, counts, offsets, rowOfSlot, tokenOfRow)).ParamName);
        Assert.Equal("blockSize", Assert.ThrowsAny<ArgumentException>(() => Permute.Run(ids, 2, 2, 2, 0, counts, offsets, rowOfSlot, tokenOfRow)).ParamName);
        Assert.Equal("ids", Assert.ThrowsAny<ArgumentException>(() => Permute.Run(ids, 3, 2, 2, 1, counts, offsets, rowOfSlot, tokenOfRow)).ParamName);
        Assert.Equal("tokenOfRow", Assert.ThrowsAny<ArgumentException>(() => Permute.Run(ids, 2, 2, 2, 2, counts, offsets, rowOfSlot, tokenOfRow)).ParamName);
        Assert.Equal("expertOffsets", Assert.ThrowsAny<ArgumentException>(() => Permute.Run(ids, 2, 2, 2, 1, counts, counts, rowOfSlot, tokenOfRow)).ParamName);
        Assert.Equal("gathered", Assert.ThrowsAny<ArgumentException>(() => Permute.Run(ids, 2, 2, 2, 1, counts, offsets, rowOfSlot, tokenOfRow, hidden, 8)).ParamName);
        Assert.Equal("gathered", Assert.ThrowsAny<ArgumentException>(() => Permute.Run(ids, 2, 2, 2, 1, counts, offsets, rowOfSlot, tokenOfRow, hidden, 8, gatheredHalf)).ParamName);
        Assert.Equal("hidden", Assert.ThrowsAny<ArgumentException>(() => Permute.Run(ids, 2, 2, 2, 1, counts, offsets, rowOfSlot, tokenOfRow, intHidden, 8, gathered)).ParamName);
        Assert.Equal("hidden", Assert.ThrowsAny<ArgumentException>(() => Permute.Run(ids, 2, 2, 2, 1, counts, offsets, rowOfSlot, tokenOfRow, hidden, 9, gathered)).ParamName);
    }

    internal sealed record Result(int[] Counts, int[] Offsets, int[] RowOfSlot, int[] TokenOfRow, float[] Gathered);

    internal static Result RunPermute(Accelerator accelerator, Case c, int[] ids, float[] hidden)
    {
        long capacity = Permute.RowCapacity(c.Tokens, c.TopK, c.Experts, c.BlockSize);
        using var idsBuffer = accelerator.Upload<int>(ids);
        using var hiddenBuffer = TokenOpsData.Upload(accelerator, c.DType, hidden);
        using var counts = TokenOpsData.Poisoned<int>(accelerator, c.Experts);
        using var offsets = TokenOpsData.Poisoned<int>(accelerator, c.Experts + 1);
        using var rowOfSlot = TokenOpsData.Poisoned<int>(accelerator, ids.Length);
        using var tokenOfRow = TokenOpsData.Poisoned<int>(accelerator, capacity);
        using var gathered = TokenOpsData.Poisoned(accelerator, c.DType, capacity * c.Hidden);
        // A poisoned workspace: the kernels must not depend on it being zeroed (graph replays reuse it as left).
        using var workspace = TokenOpsData.Poisoned<int>(accelerator, Math.Max(1, Permute.WorkspaceElements(c.Tokens, c.TopK, c.Experts)));
        Permute.Run(idsBuffer, c.Tokens, c.TopK, c.Experts, c.BlockSize, counts, offsets, rowOfSlot, tokenOfRow, hiddenBuffer, c.Hidden, gathered,
            workspace);
        var offsetsHost = offsets.ToArray();
        // Rows at or past expertOffsets[E] are documented as not written: keep only the rows in use.
        var rows = TokenOpsData.Download(gathered)[..(offsetsHost[c.Experts] * c.Hidden)];
        return new Result(counts.ToArray(), offsetsHost, rowOfSlot.ToArray(), tokenOfRow.ToArray(), rows);
    }

    private static Result Reference(Case c, int[] ids, float[] hidden)
    {
        var counts = new int[c.Experts];
        var offsets = new int[c.Experts + 1];
        var rowOfSlot = Enumerable.Repeat(-1, ids.Length).ToArray();
        var tokenOfRow = Enumerable.Repeat(-1, (int)Permute.RowCapacity(c.Tokens, c.TopK, c.Experts, c.BlockSize)).ToArray();
        int row = 0;
        for (int e = 0; e < c.Experts; e++)
        {
            offsets[e] = row;
            var slots = Enumerable.Range(0, ids.Length).Where(s => ids[s] == e).ToArray(); // ascending: stable
            counts[e] = slots.Length;
            foreach (int s in slots)
            {
                rowOfSlot[s] = row;
                tokenOfRow[row++] = s / c.TopK;
            }
            while ((row - offsets[e]) % c.BlockSize != 0)
                row++;
        }
        offsets[c.Experts] = row;
        var gathered = new float[row * c.Hidden];
        for (int r = 0; r < row; r++)
            if (tokenOfRow[r] >= 0)
                Array.Copy(hidden, tokenOfRow[r] * c.Hidden, gathered, r * c.Hidden, c.Hidden);
        return new Result(counts, offsets, rowOfSlot, tokenOfRow, gathered);
    }

    private static void AssertSame(Result expected, Result actual, string what)
    {
        Compare.Exact<int>(expected.Counts, actual.Counts, $"expertCounts, {what}");
        Compare.Exact<int>(expected.Offsets, actual.Offsets, $"expertOffsets, {what}");
        Compare.Exact<int>(expected.RowOfSlot, actual.RowOfSlot, $"rowOfSlot, {what}");
        Compare.Exact<int>(expected.TokenOfRow, actual.TokenOfRow, $"tokenOfRow, {what}");
        Compare.Exact<float>(expected.Gathered, actual.Gathered, $"gathered rows, {what}");
    }
}
