using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;
using Spectre.Console;

namespace MoeRuntime.Cli.Commands;

/// <summary><c>moe devices [--json]</c>: every accelerator, the CUDA peer-access matrix, NVRTC and driver versions.</summary>
internal static class DevicesCommand
{
    public static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "print one JSON object instead of tables" };
        var command = new Command("devices", "list the accelerators: name, compute capability, SMs, memory, peer access") { json };
        command.SetAction(parse =>
        {
            using var loggers = CliOptions.CreateLoggerFactory(parse);
            using var context = new AcceleratorContext(loggers.CreateLogger("devices"));
            var report = Describe(context);
            if (parse.GetValue(json))
                Console.Out.WriteLine(report.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            else
                PrintTables(report);
            return 0;
        });
        return command;
    }

    internal static JsonObject Describe(AcceleratorContext context)
    {
        var accelerators = new JsonArray();
        foreach (var a in context.Accelerators)
        {
            accelerators.Add(new JsonObject
            {
                ["id"] = a.Name,
                ["name"] = a.Info.Name,
                ["kind"] = a.Kind.ToString().ToLowerInvariant(),
                ["compute_capability"] = a.Kind == AcceleratorKind.Cuda ? a.Info.ComputeCapability : null,
                ["multiprocessors"] = a.Info.MultiprocessorCount,
                ["memory_bytes"] = a.Info.TotalMemoryBytes,
                ["l2_bytes"] = a.Info.L2CacheBytes,
                ["pci_bus_id"] = a.Info.PciBusId,
            });
        }
        var gpus = context.CudaAccelerators;
        var peers = new JsonArray();
        foreach (var from in gpus)
            peers.Add(new JsonArray(gpus.Select(to => (JsonNode?)JsonValue.Create(from.CanAccessPeer(to))).ToArray()));
        string? nvrtc = null;
        if (NvrtcCompiler.IsAvailable)
        {
            var (major, minor) = NvrtcCompiler.Version;
            nvrtc = $"{major}.{minor}";
        }
        return new JsonObject
        {
            ["accelerators"] = accelerators,
            ["cuda"] = new JsonObject
            {
                ["available"] = CudaRuntimeInfo.IsAvailable,
                ["reason"] = CudaRuntimeInfo.IsAvailable ? null : CudaRuntimeInfo.UnavailableReason,
                ["driver_version"] = CudaRuntimeInfo.DriverVersion,
                ["nvrtc_version"] = nvrtc,
                ["peer_access"] = peers,
            },
        };
    }

    private static void PrintTables(JsonObject report)
    {
        var table = new Table().AddColumns("id", "name", "compute", "SMs / cores", "memory", "L2");
        foreach (var a in report["accelerators"]!.AsArray())
        {
            table.AddRow(
                Markup.Escape(a!["id"]!.GetValue<string>()),
                Markup.Escape(a["name"]!.GetValue<string>()),
                a["compute_capability"]?.GetValue<string>() ?? "-",
                a["multiprocessors"]!.GetValue<int>().ToString(),
                $"{a["memory_bytes"]!.GetValue<long>() / (double)(1L << 30):F1} GiB",
                a["l2_bytes"]!.GetValue<long>() > 0 ? $"{a["l2_bytes"]!.GetValue<long>() / (double)(1 << 20):F0} MiB" : "-");
        }
        AnsiConsole.Write(table);
        var cuda = report["cuda"]!;
        AnsiConsole.WriteLine($"CUDA driver: {cuda["driver_version"]?.GetValue<string>() ?? "none"}; NVRTC: {cuda["nvrtc_version"]?.GetValue<string>() ?? "not found"}");
        if (!cuda["available"]!.GetValue<bool>())
            AnsiConsole.WriteLine($"CUDA not available: {cuda["reason"]?.GetValue<string>()}");
        var peers = cuda["peer_access"]!.AsArray();
        if (peers.Count > 1)
        {
            var matrix = new Table().AddColumn("peer access");
            for (int j = 0; j < peers.Count; j++)
                matrix.AddColumn($"cuda:{j}");
            for (int i = 0; i < peers.Count; i++)
                matrix.AddRow(new[] { $"cuda:{i}" }.Concat(peers[i]!.AsArray().Select((v, j) => i == j ? "-" : v!.GetValue<bool>() ? "yes" : "no")).ToArray());
            AnsiConsole.Write(matrix);
        }
    }
}
