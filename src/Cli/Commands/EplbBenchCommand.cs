using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using MoeRuntime.Accelerators;
using MoeRuntime.Cli.Bench;
using MoeRuntime.Runtime.Eplb;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Parallel.Eplb;

namespace MoeRuntime.Cli.Commands;

/// <summary>What <c>moe bench eplb</c> was asked to do.</summary>
internal sealed record EplbBenchArguments
{
    public string Devices { get; init; } = "cpu:0,cpu:1";
    public string Skew { get; init; } = "zipf:1.2";
    public bool Drift { get; init; }
    public int? DriftPeriod { get; init; }
    public string Preset { get; init; } = "moe-e64";
    public string DType { get; init; } = "bf16";
    public int Tokens { get; init; } = 4096;
    public int Steps { get; init; } = 64;
    public int? Redundant { get; init; }
    public int RebalanceEvery { get; init; } = 8;
    public int? Window { get; init; }
    public int Groups { get; init; } = 1;
    public int? Warmup { get; init; }
    public string Modes { get; init; } = "none,static,online";
    public string? Loads { get; init; }
    public string? Json { get; init; }
    public string? SaveLoads { get; init; }
    public int Seed { get; init; } = 2026;
}

/// <summary>
/// <c>moe bench eplb --devices cpu:0,cpu:1|cuda:0,cuda:1,... --skew zipf:1.2 [--drift [--drift-period P]] --preset moe-e64
/// --tokens T --steps N --redundant R [--rebalance-every K] [--modes none,static,online] [--loads F] [--json F] [--save-loads F]</c>:
/// synthetic Zipf-skewed routing (a seeded permutation of the experts; with --drift the hot set is re-drawn every P
/// steps) through the expert-parallel layer with no balancer, static EPLB and online EPLB; one row per mode with the
/// balance (max / mean device load), step time, tokens/s, speed-up over no balancer and migrations (copy ms each,
/// and the step time of forwards that overlapped the copies).
/// </summary>
internal static class EplbBenchCommand
{
    public static Command Create()
    {
        var devices = new Option<string>("--devices") { Description = "expert-parallel ranks, e.g. cuda:0,cuda:1,cuda:2,cuda:3 or cpu:0,cpu:1", DefaultValueFactory = _ => "cpu:0,cpu:1" };
        var skew = new Option<string>("--skew") { Description = "routing skew: zipf:S (rank i of a seeded expert permutation gets weight 1/(i+1)^S)", DefaultValueFactory = _ => "zipf:1.2" };
        var drift = new Option<bool>("--drift") { Description = "re-draw the hot experts every --drift-period steps" };
        var driftPeriod = new Option<int?>("--drift-period") { Description = "steps between re-draws of the hot set with --drift (default 2 x --rebalance-every)" };
        var preset = new Option<string>("--preset") { Description = $"layer shapes: {string.Join(", ", LayerPresets.Names)}", DefaultValueFactory = _ => "moe-e64" };
        var dtype = new Option<string>("--dtype") { Description = "f32, bf16 or f16", DefaultValueFactory = _ => "bf16" };
        var tokens = new Option<int>("--tokens") { Description = "tokens per forward (all ranks together)", DefaultValueFactory = _ => 4096 };
        var steps = new Option<int>("--steps") { Description = "timed forwards per mode", DefaultValueFactory = _ => 64 };
        var redundant = new Option<int?>("--redundant") { Description = "R redundant slots (E + R divisible by the devices; default about E/4)" };
        var rebalance = new Option<int>("--rebalance-every") { Description = "online EPLB re-plans every K forwards", DefaultValueFactory = _ => 8 };
        var window = new Option<int?>("--window") { Description = "forwards in the online load window (default 2K)" };
        var groups = new Option<int>("--groups") { Description = "hierarchical placement over N groups of devices (e.g. nodes); 1 plans flat", DefaultValueFactory = _ => 1 };
        var warmup = new Option<int?>("--warmup") { Description = "untimed forwards per mode on step 0's routing (default 2K + 2: online has planned and migrated once)" };
        var modes = new Option<string>("--modes") { Description = "none, static, online, comma-separated", DefaultValueFactory = _ => "none,static,online" };
        var loads = new Option<string?>("--loads") { Description = "load profile (JSON array) for static EPLB instead of step 0's routing" };
        var json = new Option<string?>("--json") { Description = "write the settings and rows as JSON" };
        var saveLoads = new Option<string?>("--save-loads") { Description = "write the run's tokens per expert (a profile for --eplb static: or moe eplb plan)" };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 2026 };
        var command = new Command("eplb", "expert-parallel layer under skewed routing: no balancer vs static vs online EPLB")
        {
            devices, skew, drift, driftPeriod, preset, dtype, tokens, steps, redundant, rebalance, window, groups, warmup, modes, loads, json, saveLoads, seed,
        };
        command.SetAction(parse => Run(new EplbBenchArguments
        {
            Devices = parse.GetValue(devices)!,
            Skew = parse.GetValue(skew)!,
            Drift = parse.GetValue(drift),
            DriftPeriod = parse.GetValue(driftPeriod),
            Preset = parse.GetValue(preset)!,
            DType = parse.GetValue(dtype)!,
            Tokens = parse.GetValue(tokens),
            Steps = parse.GetValue(steps),
            Redundant = parse.GetValue(redundant),
            RebalanceEvery = parse.GetValue(rebalance),
            Window = parse.GetValue(window),
            Groups = parse.GetValue(groups),
            Warmup = parse.GetValue(warmup),
            Modes = parse.GetValue(modes)!,
            Loads = parse.GetValue(loads),
            Json = parse.GetValue(json),
            SaveLoads = parse.GetValue(saveLoads),
            Seed = parse.GetValue(seed),
        }, Console.Out, Console.Error));
        return command;
    }

    /// <summary>Checks the arguments (nothing is allocated before they pass) and builds the settings.</summary>
    internal static (EplbBenchSettings Settings, List<EplbMode> Modes) Parse(EplbBenchArguments a, int deviceCount)
    {
        var config = LayerPresets.Get(a.Preset);
        var dtype = RunCommand.ParseComputeDType(a.DType);
        double s;
        try
        {
            s = ZipfRouting.ParseSkew(a.Skew);
        }
        catch (FormatException error)
        {
            throw new ArgumentException($"--skew: {error.Message}");
        }
        if (a.Tokens < 1)
            throw new ArgumentException($"--tokens is {a.Tokens}; it must be >= 1");
        if (a.Steps < 1)
            throw new ArgumentException($"--steps is {a.Steps}; it must be >= 1");
        if (a.RebalanceEvery < 1)
            throw new ArgumentException($"--rebalance-every is {a.RebalanceEvery}; it must be >= 1");
        if (a.Window is < 1)
            throw new ArgumentException($"--window is {a.Window}; it must be >= 1");
        if (a.Groups < 1 || deviceCount % a.Groups != 0 || config.NumExperts % a.Groups != 0)
            throw new ArgumentException($"--groups {a.Groups} must divide both the {deviceCount} devices and the {config.NumExperts} experts");
        if (a.Warmup is < 0)
            throw new ArgumentException($"--warmup is {a.Warmup}; it must be >= 0");
        if (a.DriftPeriod is not null && !a.Drift)
            throw new ArgumentException("--drift-period needs --drift");
        if (a.DriftPeriod is < 1)
            throw new ArgumentException($"--drift-period is {a.DriftPeriod}; it must be >= 1");
        if (deviceCount < 1)
            throw new ArgumentException("--devices names no devices");
        int e = config.NumExperts;
        if (e % deviceCount != 0)
            throw new ArgumentException($"{a.Preset}'s {e} experts do not split evenly over {deviceCount} devices (the no-balancer baseline needs E/G each)");
        int redundant = a.Redundant ?? DefaultRedundant(e, deviceCount);
        if (redundant < 0 || (e + redundant) % deviceCount != 0)
            throw new ArgumentException($"--redundant {redundant}: E + R = {e + redundant} must be a multiple of the {deviceCount} devices");
        if (e + redundant > MoeRuntime.Kernels.Permute.Permute.MaxExperts)
            throw new ArgumentException($"E + R = {e + redundant} physical slots; at most {MoeRuntime.Kernels.Permute.Permute.MaxExperts}");
        var modes = a.Modes.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(m => m.ToLowerInvariant() switch
        {
            "none" => EplbMode.None,
            "static" => EplbMode.Static,
            "online" => EplbMode.Online,
            _ => throw new ArgumentException($"--modes: '{m}' is not none, static or online"),
        }).Distinct().ToList();
        if (modes.Count == 0)
            throw new ArgumentException("--modes names no mode");
        long[]? profile = null;
        if (a.Loads is not null)
        {
            if (!File.Exists(a.Loads))
                throw new FileNotFoundException($"--loads {a.Loads}: no such file");
            try
            {
                profile = PlacementFile.ReadLoads(a.Loads);
            }
            catch (FormatException ex)
            {
                throw new ArgumentException($"--loads: {ex.Message}");
            }
            if (profile.Length != e)
                throw new ArgumentException($"--loads {a.Loads} has {profile.Length} per-expert counts; {a.Preset} has {e} experts");
        }
        foreach (var path in new[] { a.Json, a.SaveLoads })
            if (path is not null && Path.GetDirectoryName(Path.GetFullPath(path)) is { } folder && !Directory.Exists(folder))
                throw new DirectoryNotFoundException($"{path}: folder {folder} does not exist");
        var settings = new EplbBenchSettings
        {
            Preset = a.Preset, Config = config, DType = dtype, Tokens = a.Tokens, Steps = a.Steps, Skew = s,
            DriftPeriod = a.Drift ? a.DriftPeriod ?? 2 * a.RebalanceEvery : 0, Redundant = redundant,
            RebalanceEvery = a.RebalanceEvery, Groups = a.Groups, WindowForwards = a.Window ?? 2 * a.RebalanceEvery, Warmup = a.Warmup ?? 2 * a.RebalanceEvery + 2, Seed = a.Seed, StaticLoads = profile,
        };
        return (settings, modes);
    }

    /// <summary>About E/4 redundant slots, rounded up so that E + R divides over the devices.</summary>
    internal static int DefaultRedundant(int experts, int devices)
    {
        int r = Math.Max(1, experts / 4);
        while ((experts + r) % devices != 0)
            r++;
        return r;
    }

    internal static int Run(EplbBenchArguments a, TextWriter output, TextWriter errors)
    {
        try
        {
            using var context = new AcceleratorContext();
            var devices = context.GetList(a.Devices);
            if (devices.Select(d => d.Kind).Distinct().Count() != 1)
                throw new ArgumentException("--devices must all be CPU or all be CUDA accelerators");
            var (settings, modes) = Parse(a, devices.Count);
            var c = settings.Config;
            int slots = (c.NumExperts + settings.Redundant) / devices.Count;
            var bench = new EplbBench(devices, settings);
            string drift = settings.DriftPeriod > 0 ? $", hot set re-drawn every {settings.DriftPeriod} steps" : ", no drift";
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"# EPLB on {devices.Count} x {devices[0].Info.Name} ({string.Join(",", devices.Select(d => d.Name))}): {settings.Preset} H={c.HiddenSize} I={c.MoeIntermediateSize} E={c.NumExperts} k={c.TopK}, {DTypes.Name(settings.DType)}"));
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"# T={settings.Tokens} tokens x {settings.Steps} steps, routing zipf:{settings.Skew}{drift}; R={settings.Redundant} redundant -> {slots} slots per device; online: every {settings.RebalanceEvery} forwards over a {settings.WindowForwards}-forward window"));
            output.WriteLine($"# balance = max / mean expert rows per device (1.00 is even; per step, mean over steps); step time = median {(devices[0].Kind == AcceleratorKind.Cuda ? "of device events (slowest device)" : "wall clock")}");
            output.WriteLine($"{"mode",-7} {"balance",8} {"worst",7} {"step(ms)",10} {"tokens/s",11} {"speedup",8} {"migr",5} {"copies",7} {"migr(ms)",9} {"step@copy",10} {"step@rest",10}");
            var rows = new List<EplbBenchRow>();
            double? noneMs = null;
            foreach (var mode in modes)
            {
                errors.WriteLine($"moe bench eplb: {mode.ToString().ToLowerInvariant()}...");
                var row = bench.Run(mode, noneMs);
                if (mode == EplbMode.None)
                    noneMs = row.StepMs;
                rows.Add(row);
                string F(double? v) => v is { } x ? x.ToString("F3", CultureInfo.InvariantCulture) : "-";
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{row.Mode,-7} {row.Balance,8:F3} {row.MaxBalance,7:F3} {row.StepMs,10:F3} {row.TokensPerSecond,11:F0} {(noneMs is null || mode == EplbMode.None ? "-" : row.Speedup.ToString("F2", CultureInfo.InvariantCulture) + "x"),8} {row.Migrations,5} {row.SlotCopies,7} {(row.Migrations > 0 ? F(row.MigrationMs) : "-"),9} {F(row.StepMsWhileCopying),10} {F(row.StepMsOther),10}"));
            }
            if (rows.FirstOrDefault(r => r.Mode == "online") is { } online)
            {
                string overlap = online.StepMsWhileCopying is { } during
                    ? string.Create(CultureInfo.InvariantCulture, $", steps overlapping them {during:F3} ms vs {online.StepMsOther:F3} ms")
                    : "";
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"online balance {online.Balance:F3} (target <= 1.10: {(online.Balance <= 1.10 ? "met" : "not met")}); {online.Migrations} migrations (+{online.WarmupMigrations} in the warm-up), {online.MigrationMs:F3} ms of copies each on the copy streams") + overlap);
            }
            if (a.SaveLoads is not null)
            {
                File.WriteAllText(a.SaveLoads, "[" + string.Join(", ", bench.RunLoads()) + "]\n");
                output.WriteLine($"wrote {a.SaveLoads}");
            }
            if (a.Json is not null)
            {
                File.WriteAllText(a.Json, JsonSerializer.Serialize(new
                {
                    preset = settings.Preset, devices = devices.Select(d => d.Name).ToArray(), device = devices[0].Info.Name, dtype = DTypes.Name(settings.DType),
                    tokens = settings.Tokens, steps = settings.Steps, skew = settings.Skew, driftPeriod = settings.DriftPeriod, redundant = settings.Redundant,
                    slotsPerDevice = slots, rebalanceEvery = settings.RebalanceEvery, window = settings.WindowForwards, rows,
                }, new JsonSerializerOptions { WriteIndented = true }));
                output.WriteLine($"wrote {a.Json}");
            }
            return 0;
        }
        catch (Exception e) when (RunCommand.IsUserError(e))
        {
            errors.WriteLine($"moe bench eplb: {RunCommand.Describe(e)}");
            return 2;
        }
    }
}
