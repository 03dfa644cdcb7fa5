using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using MoeRuntime.Runtime.Eplb;

namespace MoeRuntime.Cli.Commands;

/// <summary>
/// <c>moe eplb plan --loads loads.json --gpus G --slots-per-gpu S [--groups N] [--json]</c>: the placement planned
/// from a load profile and the balance (max GPU load / mean GPU load) with no balancer and with the plan.
/// Bad arguments or files: a message on stderr and exit code 2.
/// </summary>
internal static class EplbCommand
{
    public static Command Create()
    {
        var loads = new Option<string>("--loads") { Description = "JSON array of per-expert token counts (one layer)", Required = true };
        var gpus = new Option<int>("--gpus") { Description = "number of GPUs G", Required = true };
        var slots = new Option<int>("--slots-per-gpu") { Description = "expert slots per GPU S (S*G >= E)", Required = true };
        var groups = new Option<int>("--groups") { Description = "nodes for the hierarchical plan (divides G and E)", DefaultValueFactory = _ => 1 };
        var json = new Option<bool>("--json") { Description = "print one JSON object: {\"slots\": [[...]...], \"balance\": {\"none\": x, \"planned\": y}}" };
        var plan = new Command("plan", "plan expert replicas and their slots from a load profile") { loads, gpus, slots, groups, json };
        plan.SetAction(parse => Run(parse.GetValue(loads)!, parse.GetValue(gpus), parse.GetValue(slots), parse.GetValue(groups), parse.GetValue(json), Console.Out, Console.Error));
        return new Command("eplb", "expert-parallel load balancing") { plan };
    }

    /// <summary>The command's work, with its output streams given (tests call it in-process). Returns the exit code.</summary>
    internal static int Run(string loadsPath, int gpus, int slotsPerGpu, int groups, bool json, TextWriter output, TextWriter errors)
    {
        Placement none, planned;
        double[] loads;
        try
        {
            var counts = PlacementFile.ReadLoads(loadsPath);
            loads = counts.Select(c => (double)c).ToArray();
            if (gpus <= 0)
                throw new ArgumentException($"--gpus is {gpus}; it must be positive");
            if (counts.Length % gpus != 0)
                throw new ArgumentException($"{counts.Length} experts do not split evenly over --gpus {gpus} (the no-balancer baseline puts E/G experts on each GPU)");
            EplbPlanner.Validate(loads, gpus, slotsPerGpu, groups);
            none = Placement.Contiguous(counts.Length, gpus);
            planned = EplbPlanner.Plan(loads, gpus, slotsPerGpu, groups);
        }
        catch (Exception e) when (e is ArgumentException or FormatException or FileNotFoundException)
        {
            errors.WriteLine($"moe eplb plan: {Describe(e)}");
            return 2;
        }
        double balanceNone = none.Balance(loads), balancePlanned = planned.Balance(loads);
        if (json)
        {
            var report = new JsonObject
            {
                ["slots"] = new JsonArray(planned.ToSlotTable().Select(g => (JsonNode)new JsonArray(g.Select(e => (JsonNode)e).ToArray())).ToArray()),
                ["balance"] = new JsonObject { ["none"] = balanceNone, ["planned"] = balancePlanned },
            };
            output.WriteLine(report.ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
            return 0;
        }
        output.WriteLine($"{planned.Experts} experts, {gpus} GPUs x {slotsPerGpu} slots, {groups} group(s); total load {loads.Sum():F0}");
        var gpuLoads = planned.GpuLoads(loads);
        var noneLoads = none.GpuLoads(loads);
        for (int g = 0; g < gpus; g++)
        {
            var table = planned.ToSlotTable()[g];
            output.WriteLine($"gpu {g}: load {gpuLoads[g],12:F1} (none {noneLoads[g],12:F1})  experts [{string.Join(", ", table)}]");
        }
        var replicated = Enumerable.Range(0, planned.Experts).Where(e => planned.ReplicaCounts[e] > 1).Select(e => $"{e}x{planned.ReplicaCounts[e]}");
        output.WriteLine($"replicated: {string.Join(", ", replicated.DefaultIfEmpty("none"))}");
        output.WriteLine($"balance (max/mean GPU load): none {balanceNone:F3}, planned {balancePlanned:F3}");
        return 0;
    }

    private static string Describe(Exception e) => e is ArgumentException a && a.ParamName is { } name
        ? $"{a.Message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal)} [{name}]"
        : e.Message;
}
