using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace MoeRuntime.Collectives.Nccl;

/// <summary>
/// Hands rank 0's NCCL unique id (or any 128-byte token) to every other rank over TCP, so that one process per
/// GPU (on this host or others) can call ncclCommInitRank. Rank 0 listens at the address; every other rank
/// connects (retrying until the deadline), says its rank, and reads the token. Wire: 4-byte rank (little endian)
/// and 4-byte rank count from the joiner; 128-byte token back.
/// A rank that never shows up fails rank 0 with a <see cref="RendezvousTimeoutException"/> naming the missing
/// ranks; a rank 0 that never shows up fails the others with one naming the address.
/// </summary>
public static class Rendezvous
{
    public const int TokenBytes = NcclUniqueId.Bytes;

    /// <summary>Rank 0: waits for ranks 1..size-1 at <paramref name="address"/> and gives each <paramref name="token"/>.</summary>
    public static async Task ServeAsync(IPEndPoint address, int size, ReadOnlyMemory<byte> token, TimeSpan timeout, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (size < 1)
            throw new ArgumentOutOfRangeException(nameof(size), size, "at least one rank");
        if (token.Length != TokenBytes)
            throw new ArgumentException($"the token is {TokenBytes} bytes; got {token.Length}", nameof(token));
        var listener = new TcpListener(address);
        listener.Start(size);
        try
        {
            await ServeAsync(listener, size, token, timeout, cancellation).ConfigureAwait(false);
        }
        finally
        {
            listener.Stop();
        }
    }

    /// <summary>Rank 0 on a listener already started (tests bind port 0 and read the port from it).</summary>
    public static async Task ServeAsync(TcpListener listener, int size, ReadOnlyMemory<byte> token, TimeSpan timeout, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(listener);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        deadline.CancelAfter(timeout);
        var arrived = new bool[size];
        arrived[0] = true;
        int remaining = size - 1;
        var clients = new List<TcpClient>();
        try
        {
            while (remaining > 0)
            {
                TcpClient client;
                try
                {
                    client = await listener.AcceptTcpClientAsync(deadline.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
                {
                    var missing = Enumerable.Range(0, size).Where(r => !arrived[r]);
                    throw new RendezvousTimeoutException(
                        $"rendezvous at {listener.LocalEndpoint}: rank(s) {string.Join(", ", missing)} of {size} did not connect within {timeout.TotalSeconds:F1} s");
                }
                clients.Add(client);
                var stream = client.GetStream();
                var hello = new byte[8];
                await stream.ReadExactlyAsync(hello, deadline.Token).ConfigureAwait(false);
                int rank = BinaryPrimitives.ReadInt32LittleEndian(hello);
                int theirSize = BinaryPrimitives.ReadInt32LittleEndian(hello.AsSpan(4));
                if (theirSize != size || rank <= 0 || rank >= size || arrived[rank])
                    throw new InvalidOperationException($"rendezvous at {listener.LocalEndpoint}: a peer says rank {rank} of {theirSize}; expected a new rank in 1..{size - 1} of {size}");
                arrived[rank] = true;
                remaining--;
                await stream.WriteAsync(token, deadline.Token).ConfigureAwait(false);
            }
        }
        finally
        {
            foreach (var client in clients)
                client.Dispose();
        }
    }

    /// <summary>Rank 1..size-1: connects to rank 0 at <paramref name="address"/> (retrying until the deadline) and returns the token.</summary>
    public static async Task<byte[]> JoinAsync(IPEndPoint address, int rank, int size, TimeSpan timeout, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (rank <= 0 || rank >= size)
            throw new ArgumentOutOfRangeException(nameof(rank), rank, $"joining ranks are 1..{size - 1} (rank 0 serves)");
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        deadline.CancelAfter(timeout);
        try
        {
            while (true)
            {
                using var client = new TcpClient(address.AddressFamily);
                try
                {
                    await client.ConnectAsync(address, deadline.Token).ConfigureAwait(false);
                }
                catch (SocketException)
                {
                    // Rank 0 may not be listening yet: try again shortly.
                    await Task.Delay(50, deadline.Token).ConfigureAwait(false);
                    continue;
                }
                var stream = client.GetStream();
                var hello = new byte[8];
                BinaryPrimitives.WriteInt32LittleEndian(hello, rank);
                BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(4), size);
                await stream.WriteAsync(hello, deadline.Token).ConfigureAwait(false);
                var token = new byte[TokenBytes];
                await stream.ReadExactlyAsync(token, deadline.Token).ConfigureAwait(false);
                return token;
            }
        }
        catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
        {
            throw new RendezvousTimeoutException($"rank {rank} of {size}: rank 0 did not answer at {address} within {timeout.TotalSeconds:F1} s");
        }
    }

    /// <summary>The whole exchange for one rank: rank 0 serves <paramref name="token"/>, the others receive it.</summary>
    public static byte[] Exchange(IPEndPoint address, int rank, int size, ReadOnlyMemory<byte> token, TimeSpan timeout)
    {
        if (rank == 0)
        {
            ServeAsync(address, size, token, timeout).GetAwaiter().GetResult();
            return token.ToArray();
        }
        return JoinAsync(address, rank, size, timeout).GetAwaiter().GetResult();
    }
}

/// <summary>A rank did not show up at the rendezvous in time.</summary>
public sealed class RendezvousTimeoutException(string message) : TimeoutException(message);
