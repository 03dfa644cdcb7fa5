using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using MoeRuntime.Collectives.Distributed;

namespace MoeRuntime.Cli.Launch;

/// <summary>How to start a child: an executable and the arguments that come before the user's (e.g. dotnet moe.dll).</summary>
internal sealed record ChildCommand(string FileName, IReadOnlyList<string> PrefixArguments)
{
    /// <summary>
    /// The moe executable running now: its apphost (<c>moe</c>), or <c>dotnet moe.dll</c> when started through the
    /// dotnet host (Environment.ProcessPath is then dotnet, and the entry assembly is moe.dll).
    /// </summary>
    public static ChildCommand ThisMoe()
    {
        string process = Environment.ProcessPath ?? throw new InvalidOperationException("cannot tell which executable this process runs (Environment.ProcessPath is null)");
        string? entry = Assembly.GetEntryAssembly()?.Location;
        bool viaHost = string.Equals(Path.GetFileNameWithoutExtension(process), "dotnet", StringComparison.OrdinalIgnoreCase);
        return viaHost && !string.IsNullOrEmpty(entry) ? new ChildCommand(process, [entry]) : new ChildCommand(process, []);
    }

    public override string ToString() => string.Join(" ", PrefixArguments.Prepend(FileName));
}

/// <summary>
/// <c>moe launch</c>'s work: starts N local ranks of one command with the torchrun-style environment (RANK,
/// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT; NCCL_NVLS_ENABLE=0 unless set), forwards their
/// stdout and stderr line by line as <c>[rank r] line</c>, and fails fast: when one rank exits non-zero, the others
/// are killed and the launch exits with that rank's code.
/// </summary>
internal static class LocalLauncher
{
    /// <summary>Variables of other launchers that would contradict ours in the children.</summary>
    private static readonly string[] Cleared =
        ["OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE", "TORCHELASTIC_USE_AGENT_STORE", "GROUP_RANK", "ROLE_RANK"];

    public static async Task<int> RunAsync(ChildCommand command, IReadOnlyList<string> arguments, int processes, string masterAddress, int? masterPort,
                                           TextWriter output, TextWriter errors, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(command);
        ArgumentNullException.ThrowIfNull(arguments);
        if (processes < 1)
            throw new ArgumentOutOfRangeException(nameof(processes), processes, "--nproc must be at least 1");
        int port = masterPort ?? FreePort();
        var sink = new object();
        var children = new Process[processes];
        var exits = new Task[processes];
        try
        {
            for (int r = 0; r < processes; r++)
            {
                var start = new ProcessStartInfo(command.FileName)
                {
                    UseShellExecute = false,
                    RedirectStandardOutput = true,
                    RedirectStandardError = true,
                    RedirectStandardInput = false,
                };
                foreach (string a in command.PrefixArguments.Concat(arguments))
                    start.ArgumentList.Add(a);
                foreach (string name in Cleared)
                    start.Environment.Remove(name);
                foreach (var (name, value) in LaunchEnvironment.ForLocalRank(r, processes, masterAddress, port))
                    start.Environment[name] = value;
                if (!start.Environment.ContainsKey("NCCL_NVLS_ENABLE"))
                    start.Environment["NCCL_NVLS_ENABLE"] = "0"; // NVLink multicast stays off on shared machines
                var child = new Process { StartInfo = start, EnableRaisingEvents = true };
                string prefix = $"[rank {r}] ";
                child.OutputDataReceived += (_, e) => Forward(output, sink, prefix, e.Data);
                child.ErrorDataReceived += (_, e) => Forward(errors, sink, prefix, e.Data);
                try
                {
                    child.Start();
                }
                catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
                {
                    throw new LaunchException($"cannot start rank {r}: {command} ({e.Message})");
                }
                children[r] = child;
                child.BeginOutputReadLine();
                child.BeginErrorReadLine();
                exits[r] = child.WaitForExitAsync(CancellationToken.None);
            }

            int? failedRank = null;
            int code = 0;
            var pending = Enumerable.Range(0, processes).ToList();
            using var cancelled = cancellation.Register(() => KillAll(children));
            while (pending.Count > 0)
            {
                var done = await Task.WhenAny(pending.Select(r => exits[r])).ConfigureAwait(false);
                int rank = Array.IndexOf(exits, done);
                pending.Remove(rank);
                int exit = children[rank].ExitCode;
                if (exit != 0 && failedRank is null)
                {
                    failedRank = rank;
                    code = exit;
                    if (pending.Count > 0)
                    {
                        lock (sink)
                            errors.WriteLine($"moe launch: rank {rank} exited with code {exit}; stopping rank(s) {string.Join(", ", pending)}");
                        KillAll(children);
                    }
                }
            }
            if (cancellation.IsCancellationRequested && failedRank is null)
                return 130;
            if (failedRank is { } f)
                lock (sink)
                    errors.WriteLine($"moe launch: failed: rank {f} exited with code {code}");
            return code;
        }
        finally
        {
            KillAll(children);
            foreach (var child in children)
                child?.Dispose();
        }
    }

    private static void Forward(TextWriter writer, object sink, string prefix, string? line)
    {
        if (line is null)
            return;
        lock (sink)
        {
            writer.WriteLine(prefix + line);
            writer.Flush();
        }
    }

    private static void KillAll(Process?[] children)
    {
        foreach (var child in children)
        {
            try
            {
                if (child is not null && !child.HasExited)
                    child.Kill(entireProcessTree: true);
            }
            catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception or NotSupportedException)
            {
                // Already gone.
            }
        }
    }

    /// <summary>A TCP port free on loopback now (the OS picks it), for MASTER_PORT when none is given.</summary>
    internal static int FreePort()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }
}

/// <summary>A rank could not be started.</summary>
internal sealed class LaunchException(string message) : Exception(message);
