using MoeRuntime.Accelerators;
using MoeRuntime.Collectives;
using MoeRuntime.Collectives.AllReduce;
using MoeRuntime.Collectives.Cuda;
using MoeRuntime.Tests.Infrastructure;
using static MoeRuntime.Tests.Collectives.CollectiveTestData;

namespace MoeRuntime.Tests.Collectives;

/// <summary>
/// The LL kernel's trace (LL_TRACE, <see cref="LowLatencyTrace"/>): its readout from control words without a GPU; on two
/// GPUs a traced communicator's last call leaves its stamps in step order on every rank, and an untraced one none.
/// </summary>
public class LowLatencyTraceTests
{
    [Fact]
    public void StampsAreReadAsLittleEndianPairsAfterTheEpochWords()
    {
        var control = new uint[LowLatencyLayout.ControlWords];
        void Put(LowLatencyTrace.Stamp stamp, ulong value)
        {
            control[LowLatencyLayout.TraceWord + 2 * (int)stamp] = (uint)value;
            control[LowLatencyLayout.TraceWord + 2 * (int)stamp + 1] = (uint)(value >> 32);
        }
        ulong t0 = 5_000_000_000;   // past 2^32 ns: the high word matters
        Put(LowLatencyTrace.Stamp.PreviousEnd, t0 - 700);
        Put(LowLatencyTrace.Stamp.Entry, t0);
        Put(LowLatencyTrace.Stamp.Waited, t0 + 500);
        Put(LowLatencyTrace.Stamp.End, t0 + 3250);
        Put(LowLatencyTrace.Stamp.Polls0, 12);
        var trace = LowLatencyTrace.FromControl(1, control);
        Assert.Equal(0.5, trace.SinceEntryUs(LowLatencyTrace.Stamp.Waited)!.Value, 9);
        Assert.Null(trace.SinceEntryUs(LowLatencyTrace.Stamp.Gathered));
        string line = trace.Describe();
        Assert.Contains("rank 1: previous end -> entry 0.70 us", line);
        Assert.Contains("waited 0.50", line);
        Assert.Contains("gathered -", line);
        Assert.Contains("end 3.25 us; polls step 0 12, step 1 0", line);
    }

    [Theory]
    [InlineData(AllReduceAlgorithm.TwoShot)]
    [InlineData(AllReduceAlgorithm.OneShot)]
    public void ATracedCallLeavesItsStampsInStepOrderOnEveryRank(AllReduceAlgorithm algorithm)
    {
        var group = TestDevices.GetGroup("cuda", 2);
        var options = Options(TimeSpan.FromSeconds(5)) with { LowLatencyKernel = LowLatencyKernelOptions.Default with { Trace = true } };
        using var communicator = Communicator.Create(group, options);
        long count = 512;   // 1 KB of bf16: one block, thread 0 in every step
        var inputs = Enumerable.Range(0, 2).Select(r => Upload(group[r], DType.BF16, Verifiable(3, r, count))).ToList();
        try
        {
            // A call of the other algorithm first: its stamps must not show through this one's.
            communicator.AllReduce(inputs, inputs, algorithm == AllReduceAlgorithm.OneShot ? AllReduceAlgorithm.TwoShot : AllReduceAlgorithm.OneShot);
            for (int call = 0; call < 3; call++)
                communicator.AllReduce(inputs, inputs, algorithm);
            Assert.True(communicator.LastAllReduceLowLatency);
            var backend = communicator.DescribeLowLatencyTrace();
            Assert.Equal(2, backend.Count);
            Assert.All(backend, line => Assert.Matches(@"previous end -> entry -?\d+\.\d\d us", line));
            var stamps = algorithm == AllReduceAlgorithm.TwoShot
                ? new[] { LowLatencyTrace.Stamp.Entry, LowLatencyTrace.Stamp.Waited, LowLatencyTrace.Stamp.Stored, LowLatencyTrace.Stamp.Received,
                          LowLatencyTrace.Stamp.Pushed, LowLatencyTrace.Stamp.Gathered, LowLatencyTrace.Stamp.End }
                : new[] { LowLatencyTrace.Stamp.Entry, LowLatencyTrace.Stamp.Waited, LowLatencyTrace.Stamp.Stored, LowLatencyTrace.Stamp.Received,
                          LowLatencyTrace.Stamp.Pushed, LowLatencyTrace.Stamp.End };
            foreach (var line in backend)
            {
                Assert.Equal(algorithm == AllReduceAlgorithm.OneShot, line.Contains("gathered -", StringComparison.Ordinal));
                // Every stamp of the call present, in step order, within the call's time (far under the 5 s timeout).
                var times = stamps.Skip(1).Select(s => ParseUs(line, s)).ToList();
                Assert.All(times, t => Assert.InRange(t, 0, 5e6));
                Assert.Equal(times.Order(), times);
            }
        }
        finally
        {
            DisposeAll(inputs);
        }
    }

    [Fact]
    public void AnUntracedCommunicatorHasNoTrace()
    {
        var group = TestDevices.GetGroup("cuda", 2);
        using var communicator = Communicator.Create(group, Options(TimeSpan.FromSeconds(5)) with { LowLatencyKernel = LowLatencyKernelOptions.Default });
        Assert.Empty(communicator.DescribeLowLatencyTrace());
    }

    /// <summary>A stamp's "name 1.23" from a trace line (names as <see cref="LowLatencyTrace.Describe"/> writes them).</summary>
    private static double ParseUs(string line, LowLatencyTrace.Stamp stamp)
    {
        var match = System.Text.RegularExpressions.Regex.Match(line, $@"\b{stamp.ToString().ToLowerInvariant()} (-?\d+\.\d+)");
        Assert.True(match.Success, $"no '{stamp}' in: {line}");
        return double.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }
}
