using System.Reflection;
using System.Reflection.Emit;

namespace MoeRuntime.Tests.Infrastructure;

/// <summary>
/// Every test that sets a process-wide switch runs alone (<see cref="ProcessSwitches"/>). The switches are found in the
/// test assembly's IL, not listed by hand: a call from any method (lambdas, local functions and iterators included: they
/// count for the class that holds them) to a static property setter of a MoeRuntime type, or a store to one of its static
/// fields. Setters and fields that are [ThreadStatic] (a thread's own diagnostics) are not process-wide.
/// </summary>
public sealed class ProcessSwitchesTests
{
    /// <summary>Switches another class may see set without harm, and why (each reason names the test that shows it).</summary>
    private static readonly Dictionary<string, string> Harmless = new()
    {
        ["GroupedGemmWgmma.GroupMOverride"] = "the tile order only: the same bits (GroupedGemmWgmmaTests.WgmmaGroupSizeDoesNotChangeTheResult)",
        ["GroupedGemmWgmma.EpilogueOverride"] = "both epilogues give the same bits (GroupedGemmWgmmaTests.BothEpiloguesGiveTheSameBits)",
        ["GroupedGemmWgmma.SmallTilesOverride"] = "small tiles on and off give the same bits (GroupedGemmWgmmaTests.SmallTilesGiveTheSameBits)",
        ["GroupedGemmWgmma.ProducerRegistersOverride"] = "the register split only: the same bits (GroupedGemmWgmmaTests.TheProducersRegistersChangeNoBit)",
        ["GroupedGemmWgmma.ClusterOverride"] = "paired and unpaired blocks give the same bits (GroupedGemmWgmmaClusterTests.PairedBlocksGiveTheUnpairedBits)",
        ["GroupedGemmWgmma.ScheduleOverride"] = "both schedules give the same bits (GroupedGemmWgmmaTests.BothSchedulesGiveTheSameBits)",
        ["GroupedGemmCpuFast.ForceNarrow"] = "both CPU forms give the same bits (GroupedGemmTests.TheCpuPathsTwoFormsGiveTheSameBits)",
        ["GroupedGemmGemvBulk.ConfigOverride"] = "read only by the bulk GEMV, an experiment off by default that only GroupedGemmGemvBulkTests runs",
    };

    [Fact]
    public void EveryTestThatSetsAProcessWideSwitchRunsAlone()
    {
        var found = SwitchesSetByTests();
        // The scan itself works: it sees the switch whose flip made the layer tests fail.
        Assert.Contains((typeof(MoeRuntime.Tests.Kernels.TopKRoutingTests), "TopKRouting.ForceStridedLayout"), found);
        var outside = found.Where(f => !Harmless.ContainsKey(f.Switch) && !RunsAlone(f.Class)).ToList();
        Assert.True(outside.Count == 0,
            "these test classes set a process-wide switch but run beside other classes; put them in [Collection(ProcessSwitches.Name)]: " +
            string.Join(", ", outside.Select(f => $"{f.Class.Name} sets {f.Switch}")));
    }

    [Fact]
    public void ThreadStaticSettersAreNotSwitches()
    {
        var setter = typeof(MoeRuntime.Kernels.GroupedGemm.GroupedGemmDenseGemv)
            .GetProperty("LastRunOnThisThread", BindingFlags.NonPublic | BindingFlags.Static)!.SetMethod!;
        Assert.False(IsProcessWideSetter(setter));
        var forced = typeof(MoeRuntime.Kernels.Routing.TopKRouting)
            .GetProperty("ForceStridedLayout", BindingFlags.NonPublic | BindingFlags.Static)!.SetMethod!;
        Assert.True(IsProcessWideSetter(forced));
    }

    private static bool RunsAlone(Type testClass) =>
        testClass.GetCustomAttribute<CollectionAttribute>() is { } collection && collection.Name == ProcessSwitches.Name;

    /// <summary>
    /// (test class, "Type.Member") for every static MoeRuntime property setter the test assembly calls and every static
    /// MoeRuntime field it stores to.
    /// </summary>
    private static HashSet<(Type Class, string Switch)> SwitchesSetByTests()
    {
        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly;
        var found = new HashSet<(Type, string)>();
        foreach (var type in typeof(ProcessSwitchesTests).Assembly.GetTypes())
            foreach (var method in type.GetMethods(all).Cast<MethodBase>().Concat(type.GetConstructors(all)))
                foreach (var (code, token) in Operands(method))
                {
                    if (code.OperandType == OperandType.InlineMethod && Resolve(() => method.Module.ResolveMethod(token, TypeArguments(method), MethodArguments(method)))
                        is MethodInfo setter && IsProcessWideSetter(setter))
                        found.Add((Outermost(type), $"{setter.DeclaringType!.Name}.{setter.Name["set_".Length..]}"));
                    if (code == OpCodes.Stsfld && Resolve(() => method.Module.ResolveField(token, TypeArguments(method), MethodArguments(method)))
                        is { } field && IsMoeRuntimeMember(field) && !field.IsDefined(typeof(ThreadStaticAttribute)))
                        found.Add((Outermost(type), $"{field.DeclaringType!.Name}.{field.Name}"));
                }
        return found;
    }

    /// <summary>
    /// A static property setter of a MoeRuntime type, unless all it stores are [ThreadStatic] fields (a setter that stores
    /// none, e.g. one that calls a method, counts: what it changes is not known here).
    /// </summary>
    private static bool IsProcessWideSetter(MethodInfo method)
    {
        if (!method.IsStatic || !method.IsSpecialName || !method.Name.StartsWith("set_", StringComparison.Ordinal) || !IsMoeRuntimeMember(method))
            return false;
        var stored = Operands(method).Where(o => o.Code == OpCodes.Stsfld)
            .Select(o => Resolve(() => method.Module.ResolveField(o.Token))).OfType<FieldInfo>().ToList();
        return stored.Count == 0 || !stored.All(f => f.IsDefined(typeof(ThreadStaticAttribute)));
    }

    private static bool IsMoeRuntimeMember(MemberInfo member) =>
        member.DeclaringType is { } type && type.Assembly != typeof(ProcessSwitchesTests).Assembly
        && type.Assembly.GetName().Name!.StartsWith("MoeRuntime", StringComparison.Ordinal);

    /// <summary>The member a token names, or null where it names another kind or a generic context not known here.</summary>
    private static MemberInfo? Resolve(Func<MemberInfo?> resolve)
    {
        try
        {
            return resolve();
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

    private static Type Outermost(Type type) => type.DeclaringType is { } outer ? Outermost(outer) : type;

    private static Type[]? TypeArguments(MethodBase method) =>
        method.DeclaringType is { IsGenericType: true } type ? type.GetGenericArguments() : null;

    private static Type[]? MethodArguments(MethodBase method) =>
        method.IsGenericMethod ? method.GetGenericArguments() : null;

    private static readonly Dictionary<short, OpCode> OpCodesByValue = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static).Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => o.Value);

    /// <summary>
    /// The method's instructions that name a member (a method: call, callvirt, newobj, ldftn; a field: ldsfld, stsfld, ...)
    /// with the member's token, walked instruction by instruction so that operand bytes are never read as opcodes.
    /// </summary>
    private static List<(OpCode Code, int Token)> Operands(MethodBase method)
    {
        var operands = new List<(OpCode, int)>();
        var il = method.GetMethodBody()?.GetILAsByteArray();
        for (int at = 0; il is not null && at < il.Length;)
        {
            bool twoBytes = il[at] == 0xFE;
            var code = OpCodesByValue[twoBytes ? unchecked((short)(0xFE00 | il[at + 1])) : il[at]];
            at += twoBytes ? 2 : 1;
            if (code.OperandType is OperandType.InlineMethod or OperandType.InlineField)
                operands.Add((code, BitConverter.ToInt32(il, at)));
            at += code.OperandType switch
            {
                OperandType.InlineNone => 0,
                OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
                OperandType.InlineVar => 2,
                OperandType.InlineI8 or OperandType.InlineR => 8,
                OperandType.InlineSwitch => 4 + 4 * BitConverter.ToInt32(il, at),
                _ => 4,
            };
        }
        return operands;
    }
}
