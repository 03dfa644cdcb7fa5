using System.Diagnostics;
using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cpu;
using MoeRuntime.Collectives;
using MoeRuntime.Collectives.AllReduce;
using MoeRuntime.Collectives.Schedule;
using MoeRuntime.Tests.Infrastructure;
using static MoeRuntime.Tests.Collectives.CollectiveTestData;

namespace MoeRuntime.Tests.Collectives;

/// <summary>The communicator's contract: schedules of the promised shape, timeouts, validation, no leaks.</summary>
public class CommunicatorTests
{
    /// <summary>Communication steps (steps after staging): ring 2(N-1), two-shot 2, one-shot 1; one barrier closes each.</summary>
    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(8)]
    public void SchedulesHaveTheDesignedStepCounts(int ranks)
    {
        // Communication steps after every rank has arrived (step 0: arrival, and staging where an algorithm stages).
        // Two-shot is one step: its all-gather shot is fused into the reduce-scatter's stores (pushed to every rank).
        var expected = new Dictionary<ScheduledAllReduce, int>
        {
            [new RingAllReduce()] = 2 * (ranks - 1),
            [new TwoShotAllReduce()] = 1,
            [new OneShotAllReduce()] = 1,
        };
        foreach (var (algorithm, steps) in expected)
        {
            foreach (bool inPlace in new[] { false, true })
            {
                for (int r = 0; r < ranks; r++)
                {
                    var ops = algorithm.BuildSchedule(r, ranks, inPlace);
                    Assert.Equal(steps + 1, ops.Count(o => o.Kind == (int)OpKind.Barrier));
                    Assert.Equal(steps, ops.Where(o => o.Kind != (int)OpKind.Barrier).Select(o => o.Step).Distinct().Count(s => s > 0));
                    Assert.Equal((int)OpKind.Barrier, ops[^1].Kind);
                    // No op reads a peer's input or writes a peer's memory before the first barrier (every rank has arrived).
                    var beforeArrival = ops.TakeWhile(o => o.Kind != (int)OpKind.Barrier).ToList();
                    Assert.All(beforeArrival, o => Assert.True(o.Source0Rank < 0 && o.Kind == (int)OpKind.Copy, o.ToString()));
                    // Inputs are never written; only the push writes other ranks' memory (their outputs).
                    Assert.All(ops.Where(o => o.Kind != (int)OpKind.Barrier), o => Assert.NotEqual(OpBuffer.Input, OpBuffer.KindOf(o.Destination)));
                    Assert.All(ops.Where(o => o.Kind == (int)OpKind.ReduceAllPush), o => Assert.Equal(OpBuffer.Output, o.Destination));
                    // In place, every read of a peer's buffer goes to its staging: its input is its output.
                    if (inPlace)
                        Assert.All(ops.Where(o => o.Kind == (int)OpKind.ReduceAll), o => Assert.NotEqual(OpBuffer.Input, OpBuffer.KindOf(o.Source0)));
                }
            }
        }
    }

    /// <summary>Two-shot, N = 4, rank 2: arrive, then chunk 2 of the sum of every input goes into every output, then leave.</summary>
    [Fact]
    public void TwoShotPushesItsChunkBetweenTwoBarriers()
    {
        var ops = new TwoShotAllReduce().BuildSchedule(2, 4);
        Assert.Equal(new[] { OpKind.Barrier, OpKind.ReduceAllPush, OpKind.Barrier }, ops.Select(o => (OpKind)o.Kind));
        Assert.Equal((2, OpBuffer.Input, OpBuffer.Output), (ops[1].Chunk, ops[1].Source0, ops[1].Destination));
    }

    /// <summary>Ring, N = 3, rank 0, worked by hand: RS adds chunk 2 then chunk 1 and owns chunk 1; AG takes chunk 0 then chunk 2 from rank 2.</summary>
    [Fact]
    public void RingScheduleMatchesTheHandWorkedExample()
    {
        var ops = new RingAllReduce().BuildSchedule(0, 3).Where(o => o.Kind != (int)OpKind.Barrier && o.Step > 0).ToArray();
        Assert.Equal((int)OpKind.Add, ops[0].Kind);
        Assert.Equal((2, OpBuffer.Staging, 2), (ops[0].Chunk, ops[0].Source0, ops[0].Source0Rank));
        Assert.Equal((1, OpBuffer.Partial, 2), (ops[1].Chunk, ops[1].Source0, ops[1].Source0Rank));
        Assert.Equal((1, OpBuffer.Partial), (ops[2].Chunk, ops[2].Source0)); // round the finished chunk 1 into staging
        var gathered = ops.Where(o => o.Kind == (int)OpKind.Copy && o.Source0Rank == 2 && o.Source0 == OpBuffer.Staging).Select(o => o.Chunk);
        Assert.Equal(new[] { 0, 2 }, gathered);
    }

    [Theory]
    [InlineData("cpu")]
    [InlineData("cuda")]
    public void APeerThatNeverArrivesTimesOutAndPoisonsTheCommunicator(string kind)
    {
        var group = TestDevices.GetGroup(kind, kind == "cpu" ? 3 : 2);
        var timeout = TimeSpan.FromMilliseconds(400);
        using var communicator = Communicator.Create(group, Options(timeout));
        var buffers = group.Select(a => (MemoryBuffer)a.Allocate<float>(1000)).ToList();
        try
        {
            foreach (var b in buffers)
                ((MemoryBuffer<float>)b).Fill(1f);
            communicator.RankThatNeverArrives = 1;
            var clock = Stopwatch.StartNew();
            var error = Assert.Throws<CollectiveTimeoutException>(() => communicator.AllReduce(buffers, buffers, AllReduceAlgorithm.TwoShot));
            clock.Stop();
            Assert.Equal(CollectiveKind.AllReduce, error.Collective);
            Assert.NotEqual(1, error.Rank);
            Assert.Equal(0, error.Step); // the barrier after staging is where rank 1 is missed
            Assert.Contains("AllReduce", error.Message);
            Assert.Contains($"rank {error.Rank}", error.Message);
            Assert.InRange(clock.Elapsed, timeout * 0.9, timeout * 2 + TimeSpan.FromSeconds(3));

            var refused = Assert.Throws<CommunicatorFailedException>(() => communicator.AllReduce(buffers, buffers, AllReduceAlgorithm.OneShot));
            Assert.Contains("timed out", refused.Message);
            Assert.Equal(error.Message, communicator.FailureReason);

            // The devices stay usable.
            foreach (var a in group)
            {
                using var probe = a.Upload<float>([1f, 2f, 3f]);
                Assert.Equal(new[] { 1f, 2f, 3f }, probe.ToArray());
            }
        }
        finally
        {
            DisposeAll(buffers);
        }
    }

    [Fact]
    public void CallsAreValidatedBeforeAnythingRuns()
    {
        var group = TestDevices.GetGroup("cpu", 2);
        using var communicator = Communicator.Create(group, Options());
        using var a0 = group[0].Allocate<float>(10);
        using var a1 = group[1].Allocate<float>(10);
        using var b1 = group[1].Allocate<BFloat16>(10);
        using var short1 = group[1].Allocate<float>(9);
        using var huge0 = group[0].Allocate<float>(3L << 20);
        using var huge1 = group[1].Allocate<float>(3L << 20);
        using var i0 = group[0].Allocate<int>(10);
        using var i1 = group[1].Allocate<int>(10);

        Assert.Contains("bf16", Assert.Throws<ArgumentException>(() => communicator.AllReduce([a0, b1], [a0, b1])).Message);
        Assert.Contains("10 elements", Assert.Throws<ArgumentException>(() => communicator.AllReduce([a0, short1], [a0, short1])).Message);
        Assert.Contains("must live on cpu:1", Assert.Throws<ArgumentException>(() => communicator.AllReduce([a0, a0], [a0, a1])).Message);
        Assert.Contains("one buffer per rank", Assert.Throws<ArgumentException>(() => communicator.AllReduce([a0], [a0])).Message);
        Assert.Contains("i32", Assert.Throws<ArgumentException>(() => communicator.AllReduce([i0, i1], [i0, i1])).Message);
        Assert.Contains("CapacityBytes", Assert.Throws<ArgumentException>(() => communicator.AllReduce([huge0, huge1], [huge0, huge1], AllReduceAlgorithm.OneShot)).Message);
        Assert.Contains("its chunk", Assert.Throws<ArgumentException>(() => communicator.ReduceScatter([a0, a1], [a0, a1])).Message);
        Assert.Contains("negative", Assert.Throws<ArgumentOutOfRangeException>(() => communicator.AllToAllV([a0, a1], new long[,] { { 1, -1 }, { 0, 0 } }, [a0, a1])).Message);
        Assert.Contains("receives", Assert.Throws<ArgumentException>(() => communicator.AllToAllV([a0, a1], new long[,] { { 0, 6 }, { 0, 6 } }, [a0, a1])).Message);
        Assert.Contains("NCCL runs on CUDA", Assert.Throws<NotSupportedException>(() => communicator.AllReduce([a0, a1], [a0, a1], AllReduceAlgorithm.Nccl)).Message);
        // None of the refusals above poisoned the communicator.
        communicator.AllReduce([a0, a1], [a0, a1], AllReduceAlgorithm.Ring);
    }

    [Fact]
    public void CreationValidatesTheGroup()
    {
        var group = TestDevices.GetGroup("cpu", 2);
        Assert.Contains("appears as rank 0 and rank 1", Assert.Throws<ArgumentException>(() => Communicator.Create([group[0], group[0]])).Message);
        Assert.Throws<ArgumentException>(() => Communicator.Create(Array.Empty<Accelerator>()));
        Assert.Throws<ArgumentOutOfRangeException>(() => Communicator.Create(group, new CommunicatorOptions { Timeout = TimeSpan.Zero }));
    }

    [Fact]
    public void DisposeReleasesEveryRegisteredBuffer()
    {
        // Accelerators of this test alone: the shared ones are busy with tests running in parallel.
        var group = Enumerable.Range(90, 3).Select(i => new CpuAccelerator(i)).ToList();
        try
        {
            var communicator = Communicator.Create(group, Options());
            Assert.True(group[1].AllocatedBytes > 0);
            communicator.Dispose();
            Assert.All(group, a => Assert.Equal(0, a.AllocatedBytes));
            Assert.Throws<ObjectDisposedException>(() => communicator.Synchronize());
        }
        finally
        {
            group.ForEach(a => a.Dispose());
        }
    }

    /// <summary>On explicit streams a call is only enqueued; Synchronize waits for it.</summary>
    [Theory]
    [InlineData("cpu")]
    [InlineData("cuda")]
    public void ExplicitStreamsThenSynchronize(string kind)
    {
        var group = TestDevices.GetGroup(kind, 2);
        using var communicator = Communicator.Create(group, Options());
        var streams = group.Select(a => a.CreateStream()).ToList();
        var buffers = group.Select(a => (MemoryBuffer)a.Upload<float>(Enumerable.Repeat(2f, 333).ToArray())).ToList();
        try
        {
            communicator.AllReduce(buffers, buffers, AllReduceAlgorithm.TwoShot, streams);
            communicator.Synchronize();
            Assert.All(Download(buffers[1]), v => Assert.Equal(4f, v));
        }
        finally
        {
            DisposeAll(buffers);
            streams.ForEach(s => s.Dispose());
        }
    }
}
