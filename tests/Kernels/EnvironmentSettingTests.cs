using MoeRuntime.Kernels;
using MoeRuntime.Kernels.GroupedGemm;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// Switches read once from the environment (<see cref="EnvironmentSetting{T}"/>): the first read's value stays, and a bad
/// value is the parser's ArgumentException, naming the variable, at every read (never a TypeInitializationException).
/// Each test uses a variable of its own (the environment is the process's).
/// </summary>
public sealed class EnvironmentSettingTests
{
    [Fact]
    public void TheFirstReadIsKept()
    {
        const string name = "MOE_TEST_ENVIRONMENT_SETTING_KEPT";
        Environment.SetEnvironmentVariable(name, "3");
        try
        {
            var setting = new EnvironmentSetting<int>(name, GroupedGemmDenseGemv.ParseMaxRows);
            Assert.Equal(3, setting.Value);
            Environment.SetEnvironmentVariable(name, "12");
            Assert.Equal(3, setting.Value);
        }
        finally
        {
            Environment.SetEnvironmentVariable(name, null);
        }
    }

    [Fact]
    public void ABadValueThrowsTheParsersErrorAtEveryRead()
    {
        const string name = "MOE_TEST_ENVIRONMENT_SETTING_BAD";
        Environment.SetEnvironmentVariable(name, "yes");
        try
        {
            var setting = new EnvironmentSetting<bool>(name, GroupedGemmDenseGemv.Parse);
            Assert.Contains(GroupedGemmDenseGemv.EnvironmentVariable, Assert.Throws<ArgumentException>(() => setting.Value).Message);
            Assert.Throws<ArgumentException>(() => setting.Value);
            Environment.SetEnvironmentVariable(name, "off");
            Assert.False(setting.Value);
        }
        finally
        {
            Environment.SetEnvironmentVariable(name, null);
        }
    }
}
