using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace MoeRuntime.Collectives.Distributed;

/// <summary>Where a rank's launch settings came from.</summary>
public enum LaunchSource
{
    /// <summary>No launcher: one process, world size 1.</summary>
    None,
    /// <summary>torchrun / <c>moe launch</c>: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT.</summary>
    Torchrun,
    /// <summary>Open MPI's mpirun: OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK.</summary>
    OpenMpi,
}

/// <summary>
/// This process's place in a multi-process run, read from the launch conventions users already have:
/// <list type="bullet">
/// <item>torchrun-style (also what <c>moe launch</c> sets): RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; all five required.</item>
/// <item>Open MPI: OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK; MASTER_ADDR and MASTER_PORT
/// as above. When they are absent and every rank is on one host (OMPI_COMM_WORLD_LOCAL_SIZE equals the world size),
/// they default to <see cref="DefaultMasterAddress"/>:<see cref="DefaultMasterPort"/>; across hosts they are required.</item>
/// </list>
/// The NCCL unique id rendezvous listens at MASTER_ADDR:<see cref="RendezvousPort"/>: MASTER_PORT, or MASTER_PORT + 1
/// when torchrun's agent store already holds MASTER_PORT (TORCHELASTIC_USE_AGENT_STORE=True); MOE_RENDEZVOUS_PORT overrides both.
/// MOE_RENDEZVOUS_TIMEOUT (seconds, default 120) bounds the wait for every rank to show up.
/// A partial or invalid setting is a <see cref="LaunchEnvironmentException"/> naming the variables.
/// </summary>
public sealed record LaunchEnvironment
{
    public const string DefaultMasterAddress = "127.0.0.1";
    public const int DefaultMasterPort = 29500;

    public static readonly string[] TorchrunVariables = ["RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"];
    public static readonly string[] OpenMpiVariables = ["OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"];

    public LaunchSource Source { get; init; }
    public int Rank { get; init; }
    public int WorldSize { get; init; } = 1;
    public int LocalRank { get; init; }
    public string MasterAddress { get; init; } = DefaultMasterAddress;
    public int MasterPort { get; init; } = DefaultMasterPort;

    /// <summary>The port of the NCCL id rendezvous (see the class summary).</summary>
    public int RendezvousPort { get; init; } = DefaultMasterPort;

    /// <summary>How long the rendezvous waits for every rank (MOE_RENDEZVOUS_TIMEOUT, seconds; default 120).</summary>
    public TimeSpan RendezvousTimeout { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>Whether this process is one rank of several.</summary>
    public bool IsDistributed => WorldSize > 1;

    /// <summary>The GPU this rank takes: cuda:LOCAL_RANK.</summary>
    public string DeviceName => $"cuda:{LocalRank.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>A one-process run (no launcher variables).</summary>
    public static LaunchEnvironment Single { get; } = new();

    public override string ToString() => Source == LaunchSource.None
        ? "single process"
        : $"rank {Rank} of {WorldSize} (local rank {LocalRank}, {Source}), rendezvous {MasterAddress}:{RendezvousPort}";

    /// <summary>This process's environment.</summary>
    public static LaunchEnvironment FromProcess()
    {
        var variables = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (string name in TorchrunVariables.Concat(OpenMpiVariables).Concat(["OMPI_COMM_WORLD_LOCAL_SIZE", "TORCHELASTIC_USE_AGENT_STORE", "MOE_RENDEZVOUS_PORT", "MOE_RENDEZVOUS_TIMEOUT"]))
            variables[name] = Environment.GetEnvironmentVariable(name);
        return Parse(variables);
    }

    /// <summary>Parses launcher variables (absent and empty values count as unset).</summary>
    public static LaunchEnvironment Parse(IReadOnlyDictionary<string, string?> variables)
    {
        ArgumentNullException.ThrowIfNull(variables);
        string? Get(string name) => variables.TryGetValue(name, out var v) && !string.IsNullOrWhiteSpace(v) ? v.Trim() : null;

        bool anyTorchrun = Get("RANK") is not null || Get("WORLD_SIZE") is not null || Get("LOCAL_RANK") is not null;
        bool anyMpi = OpenMpiVariables.Any(n => Get(n) is not null);
        if (!anyTorchrun && !anyMpi)
            return Single; // MASTER_ADDR / MASTER_PORT alone do not make this process a rank

        LaunchSource source;
        int rank, world, local;
        string? address = Get("MASTER_ADDR"), portText = Get("MASTER_PORT");
        if (anyTorchrun)
        {
            source = LaunchSource.Torchrun;
            RequireAll(Get, ["RANK", "WORLD_SIZE", "LOCAL_RANK"], "torchrun-style launch");
            rank = ParseInt(Get, "RANK");
            world = ParseInt(Get, "WORLD_SIZE");
            local = ParseInt(Get, "LOCAL_RANK");
            if ((address is null || portText is null) && world != 1)
                throw new LaunchEnvironmentException(
                    $"torchrun-style launch (RANK={rank}, WORLD_SIZE={world}) needs {Missing(("MASTER_ADDR", address), ("MASTER_PORT", portText))}: the address and port where rank 0 serves the NCCL id");
            address ??= DefaultMasterAddress; // one rank: nobody to meet
            portText ??= DefaultMasterPort.ToString(CultureInfo.InvariantCulture);
            if (anyMpi)
            {
                // Both conventions: they must agree, or the ranks would not know which to believe.
                RequireAll(Get, OpenMpiVariables, "Open MPI launch");
                int mpiRank = ParseInt(Get, "OMPI_COMM_WORLD_RANK"), mpiWorld = ParseInt(Get, "OMPI_COMM_WORLD_SIZE");
                if (mpiRank != rank || mpiWorld != world)
                    throw new LaunchEnvironmentException(
                        $"RANK={rank} WORLD_SIZE={world} disagree with OMPI_COMM_WORLD_RANK={mpiRank} OMPI_COMM_WORLD_SIZE={mpiWorld}; set one convention");
            }
        }
        else
        {
            source = LaunchSource.OpenMpi;
            RequireAll(Get, OpenMpiVariables, "Open MPI launch");
            rank = ParseInt(Get, "OMPI_COMM_WORLD_RANK");
            world = ParseInt(Get, "OMPI_COMM_WORLD_SIZE");
            local = ParseInt(Get, "OMPI_COMM_WORLD_LOCAL_RANK");
            if (address is null || portText is null)
            {
                int? localSize = Get("OMPI_COMM_WORLD_LOCAL_SIZE") is null ? null : ParseInt(Get, "OMPI_COMM_WORLD_LOCAL_SIZE");
                if (localSize != world)
                    throw new LaunchEnvironmentException(
                        $"Open MPI launch over several hosts (OMPI_COMM_WORLD_LOCAL_SIZE={(localSize?.ToString(CultureInfo.InvariantCulture) ?? "unset")}, OMPI_COMM_WORLD_SIZE={world}) " +
                        $"needs {Missing(("MASTER_ADDR", address), ("MASTER_PORT", portText))}: rank 0's host and a free port (mpirun -x MASTER_ADDR=... -x MASTER_PORT=...)");
                address ??= DefaultMasterAddress;
                portText ??= DefaultMasterPort.ToString(CultureInfo.InvariantCulture);
            }
        }

        string rankName = source == LaunchSource.Torchrun ? "RANK" : "OMPI_COMM_WORLD_RANK";
        string worldName = source == LaunchSource.Torchrun ? "WORLD_SIZE" : "OMPI_COMM_WORLD_SIZE";
        string localName = source == LaunchSource.Torchrun ? "LOCAL_RANK" : "OMPI_COMM_WORLD_LOCAL_RANK";
        if (world < 1)
            throw new LaunchEnvironmentException($"{worldName}={world}: must be at least 1");
        if (rank < 0 || rank >= world)
            throw new LaunchEnvironmentException($"{rankName}={rank}: must be in [0, {world}) for {worldName}={world}");
        if (local < 0 || local > rank)
            throw new LaunchEnvironmentException($"{localName}={local}: must be in [0, {rankName}={rank}] (the rank's index on its host)");
        int port = ParsePort("MASTER_PORT", portText);
        int rendezvousPort = port;
        if (Get("MOE_RENDEZVOUS_PORT") is { } overridePort)
            rendezvousPort = ParsePort("MOE_RENDEZVOUS_PORT", overridePort);
        else if (string.Equals(Get("TORCHELASTIC_USE_AGENT_STORE"), "true", StringComparison.OrdinalIgnoreCase))
        {
            // torchrun's agent already serves its TCPStore at MASTER_PORT on rank 0's host.
            if (port == 65535)
                throw new LaunchEnvironmentException("MASTER_PORT=65535 is torchrun's store; the rendezvous would take MASTER_PORT + 1: set MOE_RENDEZVOUS_PORT");
            rendezvousPort = port + 1;
        }
        var timeout = TimeSpan.FromSeconds(120);
        if (Get("MOE_RENDEZVOUS_TIMEOUT") is { } timeoutText)
        {
            if (!double.TryParse(timeoutText, NumberStyles.Float, CultureInfo.InvariantCulture, out double seconds) || !(seconds > 0) || seconds > 86400)
                throw new LaunchEnvironmentException($"MOE_RENDEZVOUS_TIMEOUT='{timeoutText}' is not a number of seconds in (0, 86400]");
            timeout = TimeSpan.FromSeconds(seconds);
        }
        return new LaunchEnvironment
        {
            RendezvousTimeout = timeout,
            Source = source,
            Rank = rank,
            WorldSize = world,
            LocalRank = local,
            MasterAddress = address,
            MasterPort = port,
            RendezvousPort = rendezvousPort,
        };
    }

    /// <summary>The variables that make process <paramref name="rank"/> of a local launch (what <c>moe launch</c> sets).</summary>
    public static IReadOnlyDictionary<string, string> ForLocalRank(int rank, int worldSize, string masterAddress, int masterPort) => new Dictionary<string, string>
    {
        ["RANK"] = rank.ToString(CultureInfo.InvariantCulture),
        ["WORLD_SIZE"] = worldSize.ToString(CultureInfo.InvariantCulture),
        ["LOCAL_RANK"] = rank.ToString(CultureInfo.InvariantCulture),
        ["LOCAL_WORLD_SIZE"] = worldSize.ToString(CultureInfo.InvariantCulture),
        ["MASTER_ADDR"] = masterAddress,
        ["MASTER_PORT"] = masterPort.ToString(CultureInfo.InvariantCulture),
    };

    /// <summary>
    /// The rendezvous address: MASTER_ADDR (an IP address or a host name, resolved, IPv4 first) at <see cref="RendezvousPort"/>.
    /// </summary>
    public IPEndPoint ResolveRendezvous()
    {
        if (IPAddress.TryParse(MasterAddress, out var ip))
            return new IPEndPoint(ip, RendezvousPort);
        IPAddress[] addresses;
        try
        {
            addresses = Dns.GetHostAddresses(MasterAddress);
        }
        catch (SocketException e)
        {
            throw new LaunchEnvironmentException($"MASTER_ADDR={MasterAddress}: cannot resolve the host name ({e.Message})");
        }
        var chosen = addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork) ?? addresses.FirstOrDefault()
            ?? throw new LaunchEnvironmentException($"MASTER_ADDR={MasterAddress}: the host name resolves to no address");
        return new IPEndPoint(chosen, RendezvousPort);
    }

    private static void RequireAll(Func<string, string?> get, string[] names, string what)
    {
        var missing = names.Where(n => get(n) is null).ToList();
        if (missing.Count > 0)
            throw new LaunchEnvironmentException(
                $"{what}: {string.Join(", ", names.Where(n => get(n) is not null).Select(n => $"{n}={get(n)}"))} set but {string.Join(", ", missing)} missing; set all of {string.Join(", ", names)}");
    }

    private static string Missing(params (string Name, string? Value)[] values) =>
        string.Join(" and ", values.Where(v => v.Value is null).Select(v => v.Name));

    private static int ParseInt(Func<string, string?> get, string name)
    {
        string text = get(name)!;
        if (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int value))
            throw new LaunchEnvironmentException($"{name}='{text}' is not an integer");
        return value;
    }

    private static int ParsePort(string name, string text)
    {
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is < 1 or > 65535)
            throw new LaunchEnvironmentException($"{name}='{text}' is not a TCP port (1..65535)");
        return port;
    }
}

/// <summary>The launcher's variables are partial or invalid; the message names them.</summary>
public sealed class LaunchEnvironmentException(string message) : ArgumentException(message);
