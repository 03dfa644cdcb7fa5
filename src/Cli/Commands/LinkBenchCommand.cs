using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Collectives.Cuda;

namespace MoeRuntime.Cli.Commands;

/// <summary>
/// <c>moe bench link --devices cuda:0,cuda:1 [--units 1,8,64,512] [--rounds 2000] [--json F]</c>: the one-way latency of
/// an LL-style store from one GPU to the other (<see cref="LinkLatencyProbe"/>), per step size. One-shot's critical
/// path holds one such hop and two-shot's two, so these rows are the floor to read an AllReduce latency against.
/// </summary>
internal static class LinkBenchCommand
{
    public static Command Create()
    {
        var devices = new Option<string>("--devices") { Description = "two CUDA devices, e.g. cuda:0,cuda:1", DefaultValueFactory = _ => "cuda:0,cuda:1" };
        var units = new Option<string>("--units") { Description = "16-byte units a hop (threads of the block), comma-separated", DefaultValueFactory = _ => "1,8,64,512" };
        var rounds = new Option<int>("--rounds") { Description = "timed round trips per row", DefaultValueFactory = _ => 2000 };
        var warmup = new Option<int>("--warmup") { Description = "untimed round trips first", DefaultValueFactory = _ => 100 };
        var json = new Option<string?>("--json") { Description = "write the rows as JSON" };
        var command = new Command("link", "GPU-to-GPU one-way store latency (the LL transport's step), by ping-pong")
        {
            devices, units, rounds, warmup, json,
        };
        command.SetAction(parse => Run(parse.GetValue(devices)!, parse.GetValue(units)!, parse.GetValue(rounds), parse.GetValue(warmup),
            parse.GetValue(json), Console.Out, Console.Error));
        return command;
    }

    internal static int Run(string deviceList, string unitList, int rounds, int warmup, string? jsonPath, TextWriter output, TextWriter errors)
    {
        try
        {
            var unitCounts = ParseUnits(unitList);
            foreach (int u in unitCounts)
                LinkLatencyProbe.Validate(u, rounds, warmup);
            var ids = deviceList.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(AcceleratorId.Parse).ToList();
            if (ids.Count != 2 || ids.Any(id => id.Kind != AcceleratorKind.Cuda) || ids[0] == ids[1])
                throw new ArgumentException($"--devices {deviceList}: the link probe needs two different CUDA devices (e.g. cuda:0,cuda:1)");
            using var context = new AcceleratorContext();
            var pair = ids.Select(id => (CudaAccelerator)context.Get(id)).ToList();
            output.WriteLine($"# link: {pair[0].Name} ({pair[0].Info.Name}) <-> {pair[1].Name}; LL-style 16-byte units, one thread each; one-way = round trip / 2");
            output.WriteLine($"{"units",6} {"bytes/hop",10} {"round trip(us)",15} {"one-way(us)",12}");
            var rows = new List<LinkLatency>();
            foreach (int u in unitCounts)
            {
                var row = LinkLatencyProbe.Measure(pair[0], pair[1], u, rounds, warmup, TimeSpan.FromSeconds(10));
                rows.Add(row);
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{row.Units,6} {row.BytesPerHop,10} {row.RoundTripUs,15:F3} {row.OneWayUs,12:F3}"));
            }
            if (jsonPath is not null)
                File.WriteAllText(jsonPath, JsonSerializer.Serialize(new { kind = "link", device = pair[0].Info.Name, date = DateTime.UtcNow.ToString("yyyy-MM-dd"), rounds, rows },
                    new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        }
        catch (Exception e) when (RunCommand.IsUserError(e) || e is TimeoutException)
        {
            errors.WriteLine($"moe bench link: {RunCommand.Describe(e)}");
            return 2;
        }
    }

    internal static List<int> ParseUnits(string text) =>
        text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s =>
            int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out int u)
                ? u
                : throw new ArgumentException($"--units {text}: '{s}' is not a count of units")).ToList() is { Count: > 0 } list
            ? list
            : throw new ArgumentException($"--units {text}: give at least one count");
}
