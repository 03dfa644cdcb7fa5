using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Collectives;
using MoeRuntime.Collectives.AllReduce;
using MoeRuntime.Collectives.Nccl;
using MoeRuntime.Tests.Infrastructure;
using static MoeRuntime.Tests.Collectives.CollectiveTestData;

namespace MoeRuntime.Tests.Collectives;

/// <summary>The NCCL backend: the clear error without libnccl, the rendezvous on loopback, and NCCL against our algorithms on GPUs.</summary>
public class NcclTests
{
    [Fact]
    public void MissingNcclIsAClearErrorNamingTheLibrary()
    {
        if (NcclLibrary.IsAvailable)
            Assert.Skip("libnccl is installed here; this test is for machines without it");
        var error = Assert.Throws<NcclUnavailableException>(NcclLibrary.EnsureAvailable);
        Assert.Contains("libnccl.so.2", error.Message);
        Assert.Contains("libnccl.so.2", NcclLibrary.UnavailableReason);
        Assert.Throws<NcclUnavailableException>(() => NcclCommunicator.NewUniqueId());
    }

    [Fact]
    public void OurAlgorithmsWorkWithoutNccl()
    {
        var group = TestDevices.GetGroup("cpu", 2);
        using var communicator = Communicator.Create(group, Options());
        var buffers = group.Select(a => (MemoryBuffer)a.Upload<float>([1f, 2f, 3f])).ToList();
        try
        {
            communicator.AllReduce(buffers, buffers); // auto: must not reach for NCCL on CPU accelerators
            Assert.NotEqual(AllReduceAlgorithm.Nccl, communicator.LastAllReduceAlgorithm);
            Assert.Equal(new[] { 2f, 4f, 6f }, Download(buffers[1]));
        }
        finally
        {
            DisposeAll(buffers);
        }
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public async Task RendezvousHandsTheTokenToEveryRank(int size)
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var address = (IPEndPoint)listener.LocalEndpoint;
        var token = new byte[Rendezvous.TokenBytes];
        TestData.NewRandom(out _).NextBytes(token);
        var timeout = TimeSpan.FromSeconds(20);
        try
        {
            var serve = Rendezvous.ServeAsync(listener, size, token, timeout, TestContext.Current.CancellationToken);
            var joins = Enumerable.Range(1, size - 1).Select(r => Task.Run(() => Rendezvous.JoinAsync(address, r, size, timeout, TestContext.Current.CancellationToken), TestContext.Current.CancellationToken)).ToArray();
            await serve;
            foreach (var join in joins)
                Assert.Equal(token, await join);
        }
        finally
        {
            listener.Stop();
        }
    }

    [Fact]
    public async Task RendezvousNamesTheRankThatNeverShowsUp()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var address = (IPEndPoint)listener.LocalEndpoint;
        var timeout = TimeSpan.FromMilliseconds(600);
        try
        {
            var clock = Stopwatch.StartNew();
            var serve = Rendezvous.ServeAsync(listener, 3, new byte[Rendezvous.TokenBytes], timeout, TestContext.Current.CancellationToken);
            var join = Rendezvous.JoinAsync(address, 1, 3, TimeSpan.FromSeconds(20), TestContext.Current.CancellationToken);
            var error = await Assert.ThrowsAsync<RendezvousTimeoutException>(() => serve);
            clock.Stop();
            Assert.Contains("rank(s) 2 of 3", error.Message);
            Assert.InRange(clock.Elapsed, timeout * 0.9, TimeSpan.FromSeconds(10));
            Assert.Equal(Rendezvous.TokenBytes, (await join).Length); // rank 1 got the token before rank 0 gave up
        }
        finally
        {
            listener.Stop();
        }
    }

    [Fact]
    public async Task RendezvousNamesTheAddressWhenRankZeroNeverShowsUp()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var address = (IPEndPoint)probe.LocalEndpoint;
        probe.Stop(); // nobody listens there now
        var error = await Assert.ThrowsAsync<RendezvousTimeoutException>(() => Rendezvous.JoinAsync(address, 2, 4, TimeSpan.FromMilliseconds(500), TestContext.Current.CancellationToken));
        Assert.Contains(address.ToString(), error.Message);
        Assert.Contains("rank 0 did not answer", error.Message);
    }

    [Fact]
    public void SynchronizeWaitsOnTheStreamsOfTheLastNcclCall()
    {
        // A stream-ordered NCCL call after one of ours on streams since disposed: Synchronize must wait on the NCCL call's streams.
        var group = TestDevices.GetGroup("cuda", 2);
        if (!NcclLibrary.IsAvailable)
            Assert.Skip(NcclLibrary.UnavailableReason!);
        TestData.NewRandom(out int seed);
        var inputs = Enumerable.Range(0, 2).Select(r => Verifiable(seed, r, 4096)).ToArray();
        using var communicator = Communicator.Create(group, Options());
        var input = Enumerable.Range(0, 2).Select(r => Upload(group[r], DType.F32, inputs[r])).ToList();
        var output = Enumerable.Range(0, 2).Select(r => Poisoned(group[r], DType.F32, 4096)).ToList();
        try
        {
            var first = group.Select(a => a.CreateStream()).ToList();
            communicator.AllReduce(input, output, AllReduceAlgorithm.OneShot, first);
            communicator.Synchronize();
            first.ForEach(s => s.Dispose());
            var second = group.Select(a => a.CreateStream()).ToList();
            communicator.AllReduce(input, output, AllReduceAlgorithm.Nccl, second);
            communicator.Synchronize();
            var expected = inputs[0].Zip(inputs[1], (a, b) => a + b).ToArray();
            Compare.Exact<float>(expected, Download(output[1]), $"NCCL after one-shot (seed {seed})");
            second.ForEach(s => s.Dispose());
        }
        finally
        {
            DisposeAll(input.Concat(output));
        }
    }

    [Theory]
    [InlineData(2, DType.BF16)]
    [InlineData(4, DType.BF16)]
    [InlineData(2, DType.F32)]
    public void NcclAllReduceMatchesTheExactSum(int ranks, DType dtype)
    {
        var group = TestDevices.GetGroup("cuda", ranks);
        if (!NcclLibrary.IsAvailable)
            Assert.Skip(NcclLibrary.UnavailableReason!);
        const long count = 100003;
        TestData.NewRandom(out int seed);
        var inputs = Enumerable.Range(0, ranks).Select(r => Verifiable(seed, r, count)).ToArray();
        var expected = new float[count];
        for (long i = 0; i < count; i++)
            for (int r = 0; r < ranks; r++)
                expected[i] += inputs[r][i];
        using var communicator = Communicator.Create(group, Options());
        var input = Enumerable.Range(0, ranks).Select(r => Upload(group[r], dtype, inputs[r])).ToList();
        var output = Enumerable.Range(0, ranks).Select(r => Poisoned(group[r], dtype, count)).ToList();
        try
        {
            communicator.AllReduce(input, output, AllReduceAlgorithm.Nccl);
            for (int r = 0; r < ranks; r++)
                Compare.Exact<float>(expected, Download(output[r]), $"NCCL rank {r} (seed {seed})");
        }
        finally
        {
            DisposeAll(input.Concat(output));
        }
    }

    /// <summary>One process per GPU in miniature: one thread per GPU, the unique id through the rendezvous, ncclCommInitRank.</summary>
    [Fact]
    public async Task InitRankThroughTheRendezvous()
    {
        var group = TestDevices.GetGroup("cuda", 2);
        if (!NcclLibrary.IsAvailable)
            Assert.Skip(NcclLibrary.UnavailableReason!);
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var address = (IPEndPoint)listener.LocalEndpoint;
        var id = NcclCommunicator.NewUniqueId();
        var timeout = TimeSpan.FromSeconds(30);
        var serve = Rendezvous.ServeAsync(listener, 2, id.ToArray(), timeout, TestContext.Current.CancellationToken);
        var joined = await Rendezvous.JoinAsync(address, 1, 2, timeout, TestContext.Current.CancellationToken);
        await serve;
        listener.Stop();
        var ranks = new[] { id, NcclUniqueId.FromBytes(joined) };
        var comms = new NcclCommunicator[2];
        // ncclCommInitRank blocks until every rank has joined: one dedicated thread per rank.
        var joins = Enumerable.Range(0, 2).Select(r => Task.Factory.StartNew(
            () => comms[r] = NcclCommunicator.InitRank((CudaAccelerator)group[r], ranks[r], r, 2),
            TestContext.Current.CancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();
        await Task.WhenAll(joins);
        var buffers = group.Select(a => a.Upload<float>([1f, 2f])).ToArray();
        try
        {
            NcclExtensionsForTests.Grouped(() =>
            {
                for (int r = 0; r < 2; r++)
                    comms[r].AllReduce(buffers[r], buffers[r], (CudaStream)group[r].DefaultStream);
            });
            foreach (var b in buffers)
                Assert.Equal(new[] { 2f, 4f }, b.ToArray());
        }
        finally
        {
            foreach (var c in comms)
                c?.Dispose();
            foreach (var b in buffers)
                b.Dispose();
        }
    }
}

internal static class NcclExtensionsForTests
{
    public static void Grouped(Action body)
    {
        Nccl.ncclGroupStart();
        try
        {
            body();
        }
        finally
        {
            Nccl.ncclGroupEnd();
        }
    }
}
