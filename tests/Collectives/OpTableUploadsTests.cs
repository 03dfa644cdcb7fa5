using MoeRuntime.Accelerators;
using MoeRuntime.Collectives;
using MoeRuntime.Collectives.Cuda;
using MoeRuntime.Tests.Infrastructure;
using static MoeRuntime.Tests.Collectives.CollectiveTestData;

namespace MoeRuntime.Tests.Collectives;

/// <summary>The asynchronous op table uploads of the CUDA all-to-allv (MOE_COLLECTIVE_OPS_UPLOAD=async).</summary>
[Collection(ProcessSwitches.Name)]
public sealed class OpTableUploadsTests
{
    [Theory]
    [InlineData("async", true)]
    [InlineData(" Async ", true)]
    [InlineData("sync", false)]
    [InlineData("", false)]
    [InlineData(null, false)]
    public void ParseReadsTheSwitch(string? value, bool expected) => Assert.Equal(expected, OpTableUploads.Parse(value));

    [Fact]
    public void ParseRejectsAnythingElse() => Assert.Throws<ArgumentException>(() => OpTableUploads.Parse("yes"));

    /// <summary>
    /// More calls than the ring has slots, enqueued back to back without a wait, each with its own counts and buffers: a
    /// slot rewritten before its copy ran would hand a call another call's op table, and its rows would land wrong.
    /// </summary>
    [Fact]
    public void BackToBackAllToAllVsMoveEverySegment()
    {
        const int ranks = 2, hidden = 5, calls = 3 * OpTableUploads.Slots + 1;
        var group = TestDevices.GetGroup("cuda", ranks);
        var random = TestData.NewRandom(out int seed);
        bool was = OpTableUploads.Enabled;
        OpTableUploads.Enabled = true; // read when the communicator is created
        Communicator communicator;
        try
        {
            communicator = Communicator.Create(group, Options());
        }
        finally
        {
            OpTableUploads.Enabled = was;
        }
        var streams = group.Select(a => a.DefaultStream).ToList();
        var buffers = new List<MemoryBuffer>();
        var checks = new List<(long[,] Counts, float[][] Sends, MemoryBuffer[] Receive)>();
        using (communicator)
        {
            try
            {
                for (int c = 0; c < calls; c++)
                {
                    var counts = new long[ranks, ranks];
                    for (int i = 0; i < ranks; i++)
                        for (int j = 0; j < ranks; j++)
                            counts[i, j] = random.Next(0, 3000) * hidden;
                    var sends = Enumerable.Range(0, ranks).Select(i => Verifiable(seed + c, i, Enumerable.Range(0, ranks).Sum(j => counts[i, j]) + 1)).ToArray();
                    var send = Enumerable.Range(0, ranks).Select(r => Upload(group[r], DType.F32, sends[r])).ToArray();
                    var receive = Enumerable.Range(0, ranks)
                        .Select(j => Poisoned(group[j], DType.F32, Enumerable.Range(0, ranks).Sum(i => counts[i, j]) + 1)).ToArray();
                    buffers.AddRange(send);
                    buffers.AddRange(receive);
                    checks.Add((counts, sends, receive));
                }
                foreach (var a in group)
                    a.DefaultStream.Synchronize(); // the uploads above are done; what follows is only the collectives
                for (int c = 0; c < calls; c++)
                {
                    var send = buffers.Skip(c * 2 * ranks).Take(ranks).ToArray();
                    communicator.AllToAllV(send, checks[c].Counts, checks[c].Receive, streams);
                }
                communicator.Synchronize();
                for (int c = 0; c < calls; c++)
                {
                    var (counts, sends, receive) = checks[c];
                    for (int j = 0; j < ranks; j++)
                    {
                        var expected = new List<float>();
                        for (int i = 0; i < ranks; i++)
                        {
                            long offset = 0;
                            for (int k = 0; k < j; k++)
                                offset += counts[i, k];
                            expected.AddRange(sends[i].Skip((int)offset).Take((int)counts[i, j]));
                        }
                        var actual = Download(receive[j]);
                        Compare.Exact<float>(expected.ToArray(), actual.AsSpan(0, expected.Count), $"call {c} of {calls}, rank {j} (seed {seed})");
                        Assert.True(float.IsNaN(actual[^1]), $"call {c}: rank {j}'s element past its segments was written");
                    }
                }
            }
            finally
            {
                DisposeAll(buffers);
            }
        }
    }
}
