using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using MoeRuntime.Accelerators;
using MoeRuntime.Collectives;
using MoeRuntime.Collectives.Distributed;
using MoeRuntime.Collectives.Nccl;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Collectives;

/// <summary>
/// The multi-process plumbing that runs without GPUs: the rank rendezvous over loopback from launch environments
/// (every rank gets rank 0's id; a missing rank is named), and the thread process group's collectives, exact.
/// </summary>
public class ProcessGroupTests
{
    private static LaunchEnvironment Rank(int rank, int size, int port) => LaunchEnvironment.Parse(
        LaunchEnvironment.ForLocalRank(rank, size, "127.0.0.1", port).ToDictionary(p => p.Key, p => (string?)p.Value));

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(8)]
    public async Task EveryRankReceivesRankZerosId(int size)
    {
        int port = FreePort();
        var id = new byte[Rendezvous.TokenBytes];
        TestData.NewRandom(out _).NextBytes(id);
        var timeout = TimeSpan.FromSeconds(20);
        var ct = TestContext.Current.CancellationToken;
        // Joiners start first and retry until rank 0 listens, as processes started together do.
        var tasks = Enumerable.Range(0, size).Reverse()
            .Select(r => Task.Run(() => RankRendezvous.ExchangeAsync(Rank(r, size, port), r == 0 ? id : new byte[Rendezvous.TokenBytes], timeout, ct), ct))
            .ToArray();
        var received = await Task.WhenAll(tasks);
        Assert.All(received, token => Assert.Equal(id, token));
    }

    [Fact]
    public async Task AMissingRankTimesOutNamingIt()
    {
        int port = FreePort();
        var ct = TestContext.Current.CancellationToken;
        var timeout = TimeSpan.FromMilliseconds(800);
        var clock = Stopwatch.StartNew();
        var serve = RankRendezvous.ExchangeAsync(Rank(0, 4, port), new byte[Rendezvous.TokenBytes], timeout, ct);
        var one = RankRendezvous.ExchangeAsync(Rank(1, 4, port), new byte[Rendezvous.TokenBytes], TimeSpan.FromSeconds(20), ct);
        var three = RankRendezvous.ExchangeAsync(Rank(3, 4, port), new byte[Rendezvous.TokenBytes], TimeSpan.FromSeconds(20), ct);
        var error = await Assert.ThrowsAsync<RendezvousTimeoutException>(() => serve);
        Assert.Contains("rank(s) 2 of 4 did not connect", error.Message);
        Assert.Contains($":{port}", error.Message);
        Assert.InRange(clock.Elapsed, timeout * 0.9, TimeSpan.FromSeconds(15));
        await one;
        await three;
    }

    [Fact]
    public async Task ARankWithoutRankZeroTimesOutNamingTheAddress()
    {
        int port = FreePort();
        var error = await Assert.ThrowsAsync<RendezvousTimeoutException>(() =>
            RankRendezvous.ExchangeAsync(Rank(1, 2, port), new byte[Rendezvous.TokenBytes], TimeSpan.FromMilliseconds(400), TestContext.Current.CancellationToken));
        Assert.Contains($"127.0.0.1:{port}", error.Message);
        Assert.Contains("rank 1 of 2", error.Message);
    }

    [Fact]
    public async Task ABusyPortIsAClearError()
    {
        var holder = new TcpListener(IPAddress.Any, 0);
        holder.Start();
        int port = ((IPEndPoint)holder.LocalEndpoint).Port;
        try
        {
            var error = await Assert.ThrowsAsync<RendezvousPortException>(() =>
                RankRendezvous.ExchangeAsync(Rank(0, 2, port), new byte[Rendezvous.TokenBytes], TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken));
            Assert.Contains($"port {port}", error.Message);
            Assert.Contains("MOE_RENDEZVOUS_PORT", error.Message);
        }
        finally
        {
            holder.Stop();
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void ThreadGroupCollectivesAreExact(int size)
    {
        var accelerators = TestDevices.GetGroup("cpu", size);
        var groups = ThreadProcessGroup.CreateWorld(accelerators, TimeSpan.FromSeconds(20));
        const int count = 37;
        // sendCounts[r][p] = (r + 2p) % 3 elements from r to p: some zero.
        long Counts(int from, int to) => (from + 2 * to) % 3;
        RunRanks(size, r =>
        {
            var g = groups[r];
            var a = g.Accelerator;
            // AllReduce in place: small integers per rank and index, exact in any order.
            var values = Enumerable.Range(0, count).Select(i => (float)((r * 7 + i * 3) % 11 - 5)).ToArray();
            using var sum = a.Upload<float>(values);
            g.AllReduce(sum, sum);
            var expected = Enumerable.Range(0, count).Select(i => (float)Enumerable.Range(0, size).Sum(q => (q * 7 + i * 3) % 11 - 5)).ToArray();
            Assert.Equal(expected, sum.ToArray());

            using var mine = a.Upload<long>([r, 10 * r]);
            using var all = a.Allocate<long>(2 * size);
            g.AllGather(mine, all);
            Assert.Equal(Enumerable.Range(0, size).SelectMany(q => new long[] { q, 10 * q }), all.ToArray());

            var send = Enumerable.Range(0, size).Select(p => Counts(r, p)).ToArray();
            var receive = Enumerable.Range(0, size).Select(p => Counts(p, r)).ToArray();
            var payload = Enumerable.Range(0, size).SelectMany(p => Enumerable.Range(0, (int)send[p]).Select(j => 100 * r + 10 * p + j)).ToArray();
            using var sendBuffer = a.Upload<int>(payload.Length == 0 ? [0] : payload);
            using var receiveBuffer = a.Allocate<int>(Math.Max(1, receive.Sum()));
            receiveBuffer.Fill(-1);
            g.AllToAllV(sendBuffer, send, receiveBuffer, receive);
            var got = receiveBuffer.ToArray().Take((int)receive.Sum());
            var want = Enumerable.Range(0, size).SelectMany(p => Enumerable.Range(0, (int)receive[p]).Select(j => 100 * p + 10 * r + j));
            Assert.Equal(want, got);
        });
    }

    [Fact]
    public void ThreadGroupNamesTheRankThatNeverArrives()
    {
        var groups = ThreadProcessGroup.CreateWorld(TestDevices.GetGroup("cpu", 2), TimeSpan.FromMilliseconds(300));
        using var buffer = groups[0].Accelerator.Upload<float>([1f]);
        var error = Assert.Throws<CollectiveTimeoutException>(() => groups[0].AllReduce(buffer, buffer));
        Assert.Contains("rank(s) 1 of 2 did not arrive", error.Message);
        Assert.Equal(0, error.Rank);
    }

    [Fact]
    public void ProcessGroupValidatesBuffers()
    {
        var accelerators = TestDevices.GetGroup("cpu", 2);
        var g = ThreadProcessGroup.CreateWorld(accelerators)[0];
        using var other = accelerators[1].Allocate<float>(4);
        using var mine = accelerators[0].Allocate<float>(4);
        using var ints = accelerators[0].Allocate<int>(4);
        Assert.Contains("lives elsewhere", Assert.Throws<ArgumentException>(() => g.AllReduce(other, other)).Message);
        Assert.Contains("sums take f32", Assert.Throws<ArgumentException>(() => g.AllReduce(ints, ints)).Message);
        Assert.Contains("must be 2 x input", Assert.Throws<ArgumentException>(() => g.AllGather(mine, mine)).Message);
        Assert.Contains("one send and one receive count per rank", Assert.Throws<ArgumentException>(() => g.AllToAllV(mine, [1], mine, [1, 1])).Message);
        Assert.Contains("sends 5 elements", Assert.Throws<ArgumentException>(() => g.AllToAllV(mine, [2, 3], mine, [0, 0])).Message);
    }

    /// <summary>Runs <paramref name="body"/> for ranks 0..size-1, one dedicated thread each; rethrows the first failure.</summary>
    internal static void RunRanks(int size, Action<int> body)
    {
        var tasks = Enumerable.Range(0, size).Select(r => Task.Factory.StartNew(() => body(r), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();
        try
        {
            Task.WaitAll(tasks);
        }
        catch (AggregateException e)
        {
            // The first real failure, not the timeouts it caused on the other ranks.
            var inner = e.InnerExceptions.FirstOrDefault(x => x is not CollectiveTimeoutException and not CommunicatorFailedException) ?? e.InnerExceptions[0];
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(inner).Throw();
        }
    }

    private static int FreePort()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }
}
