using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;

namespace MoeRuntime.Collectives.Cuda;

/// <summary>One measurement of <see cref="LinkLatencyProbe"/>: units of 16 bytes a step, the timed round trips, and their mean.</summary>
public sealed record LinkLatency(string From, string To, int Units, int Rounds, double RoundTripUs)
{
    /// <summary>Bytes one rank stores to the other a hop (an LL step of this size).</summary>
    public long BytesPerHop => (long)Units * LinkLatencyProbe.UnitBytes;

    /// <summary>Half a round trip: one posted store over the link until the peer's polling load sees it.</summary>
    public double OneWayUs => RoundTripUs / 2;
}

/// <summary>
/// The GPU-to-GPU latency under every LL step (link_probe.cu): two GPUs bounce LL-style 16-byte units back and forth,
/// each thread storing into the peer's memory and polling its own, and the mean round trip is timed on the device.
/// One-shot's critical path has one such hop and two-shot's two in a row, so this is what says how far below NCCL a
/// two-step AllReduce can go on a given pair of GPUs. Allocates its slots per call and frees them; peer access is
/// enabled both ways (as a communicator over the pair would). The kernels end on their own after the timeout.
/// </summary>
public static class LinkLatencyProbe
{
    public const int UnitBytes = 16;
    public const int MaxUnits = 1024;   // one block of threads a rank

    /// <summary>The arguments' check, before any device work: what a caller (the CLI) can run without a GPU.</summary>
    public static void Validate(int units, int rounds, int warmRounds)
    {
        if (units is < 1 or > MaxUnits)
            throw new ArgumentOutOfRangeException(nameof(units), units, $"units per hop: 1..{MaxUnits} (one thread each, one block)");
        if (rounds < 1)
            throw new ArgumentOutOfRangeException(nameof(rounds), rounds, "timed round trips: at least 1");
        if (warmRounds < 0)
            throw new ArgumentOutOfRangeException(nameof(warmRounds), warmRounds, "untimed round trips first: 0 or more");
    }

    /// <summary>
    /// The mean round trip of <paramref name="rounds"/> timed ping-pongs (after <paramref name="warmRounds"/> untimed ones)
    /// of <paramref name="units"/> 16-byte units between <paramref name="from"/> (it times) and <paramref name="to"/>.
    /// <paramref name="launchPeer"/> false launches only <paramref name="from"/>'s kernel (a test of the timeout).
    /// </summary>
    /// <exception cref="TimeoutException">A wait passed <paramref name="timeout"/>: the peer never answered.</exception>
    public static LinkLatency Measure(CudaAccelerator from, CudaAccelerator to, int units, int rounds, int warmRounds, TimeSpan timeout,
                                      bool launchPeer = true)
    {
        ArgumentNullException.ThrowIfNull(from);
        ArgumentNullException.ThrowIfNull(to);
        Validate(units, rounds, warmRounds);
        if (from.Device == to.Device)
            throw new ArgumentException($"{from.Name} and {to.Name} are one device; the probe needs two GPUs", nameof(to));
        from.EnablePeerAccess(to);
        to.EnablePeerAccess(from);
        var ranks = new[] { from, to };
        var slots = new MemoryBuffer<long>?[2];
        var results = new MemoryBuffer<long>?[2];
        var streams = new CudaStream?[2];
        try
        {
            for (int r = 0; r < 2; r++)
            {
                slots[r] = ranks[r].Allocate<long>(2L * units);
                slots[r]!.Clear();   // flag 0: no round's
                results[r] = ranks[r].Allocate<long>(2);
                results[r]!.Clear();
                streams[r] = (CudaStream)ranks[r].CreateStream();
                ranks[r].Synchronize();   // both slots zeroed before either kernel stores into them
            }
            long timeoutNs = (long)(timeout.TotalMilliseconds * 1e6);
            var source = KernelSource.FromResource(typeof(LinkLatencyProbe).Assembly, "link_probe.cu");
            for (int r = 0; r < (launchPeer ? 2 : 1); r++)
                ranks[r].LoadKernel(source, "link_pingpong").Launch(streams[r]!, new Dim3(1), new Dim3((uint)units), 0,
                    slots[r]!.Pointer, slots[1 - r]!.Pointer, r, rounds + warmRounds, warmRounds, timeoutNs, results[r]!.Pointer);
            foreach (var stream in streams)
                stream?.Synchronize();
            var words = results[0]!.ToArray();
            bool peerTimedOut = results[1]!.ToArray()[1] != 0;
            if (words[1] != 0 || peerTimedOut)
                throw new TimeoutException($"link probe {from.Name} <-> {to.Name}: {(words[1] != 0 ? from.Name : to.Name)} waited past " +
                                           $"{timeout.TotalMilliseconds:F0} ms for the other's line ({units} units, {rounds + warmRounds} rounds)");
            return new LinkLatency(from.Name, to.Name, units, rounds, words[0] / 1e3 / rounds);
        }
        finally
        {
            foreach (var stream in streams)
                stream?.Dispose();
            foreach (var buffer in slots.Concat(results))
                buffer?.Dispose();
        }
    }
}
