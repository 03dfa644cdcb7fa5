using System.Net;
using System.Net.Sockets;
using MoeRuntime.Collectives.Nccl;

namespace MoeRuntime.Collectives.Distributed;

/// <summary>
/// The NCCL id handout of a multi-process run, from the launch environment: rank 0 listens on every interface at
/// <see cref="LaunchEnvironment.RendezvousPort"/> and hands its 128-byte token to ranks 1..N-1, which connect to
/// MASTER_ADDR at that port (retrying until the deadline). Built on <see cref="Rendezvous"/>: a rank that never
/// shows up fails rank 0 with a <see cref="RendezvousTimeoutException"/> naming it; a rank 0 that never shows up
/// fails the others with one naming the address.
/// </summary>
public static class RankRendezvous
{
    /// <summary>Rank 0: returns <paramref name="token"/> once every rank has it; others: returns rank 0's token.</summary>
    public static byte[] Exchange(LaunchEnvironment environment, ReadOnlyMemory<byte> token, TimeSpan timeout, CancellationToken cancellation = default) =>
        ExchangeAsync(environment, token, timeout, cancellation).GetAwaiter().GetResult();

    public static async Task<byte[]> ExchangeAsync(LaunchEnvironment environment, ReadOnlyMemory<byte> token, TimeSpan timeout, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(environment);
        if (timeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "must be positive");
        if (environment.WorldSize == 1)
            return token.ToArray();
        var address = environment.ResolveRendezvous();
        if (environment.Rank != 0)
            return await Rendezvous.JoinAsync(address, environment.Rank, environment.WorldSize, timeout, cancellation).ConfigureAwait(false);

        var any = address.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any;
        var listener = new TcpListener(any, environment.RendezvousPort);
        listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        try
        {
            listener.Start(environment.WorldSize);
        }
        catch (SocketException e)
        {
            throw new RendezvousPortException(
                $"rank 0 cannot listen for the NCCL id rendezvous on port {environment.RendezvousPort} ({e.SocketErrorCode}: {e.Message}). " +
                "Under torchrun its store holds MASTER_PORT: set TORCHELASTIC_USE_AGENT_STORE=True (torchrun does) or MOE_RENDEZVOUS_PORT to a free port");
        }
        try
        {
            await Rendezvous.ServeAsync(listener, environment.WorldSize, token, timeout, cancellation).ConfigureAwait(false);
        }
        finally
        {
            listener.Stop();
        }
        return token.ToArray();
    }
}

/// <summary>Rank 0 could not open the rendezvous port.</summary>
public sealed class RendezvousPortException(string message) : IOException(message);
