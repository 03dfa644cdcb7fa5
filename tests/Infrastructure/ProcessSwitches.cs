namespace MoeRuntime.Tests.Infrastructure;

/// <summary>
/// The test classes that set a process-wide switch (a kernel's path, dependent launch, a collective's upload) for the
/// length of a call. xunit runs other collections side by side, and every launch in the process reads the switch, so
/// another class's forward would take the set path midway: the seventeenth session's intermittent 1-2 ulp differences in
/// Qwen3's routing weights were TopKRoutingTests forcing the strided layout, whose softmax denominator is summed in
/// another order, while MoeLayerDeterminismTests ran. This collection runs alone, after the others.
/// <see cref="ProcessSwitchesTests"/> finds every test that sets such a switch and checks that its class is here.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessSwitches
{
    public const string Name = "Process-wide switches";
}
