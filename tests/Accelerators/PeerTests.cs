using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Accelerators;

/// <summary>Copies between two accelerators of one kind: two CPU accelerators always, two GPUs over peer access when present.</summary>
public class PeerTests
{
    [Theory]
    [InlineData("cpu")]
    [InlineData("cuda")]
    public void CopiesBetweenTwoAcceleratorsOfOneKind(string kind)
    {
        var group = TestDevices.GetGroup(kind, 2);
        if (group[0] is CudaAccelerator g0 && group[1] is CudaAccelerator g1 && g0.CanAccessPeer(g1))
        {
            g0.EnablePeerAccess(g1);
            g1.EnablePeerAccess(g0);
        }
        var data = TestData.Uniform(TestData.NewRandom(out int seed), (1 << 20) + 3);
        using var source = group[0].Upload<float>(data);
        using var target = group[1].Allocate<float>(data.Length);
        TestData.Poison(target);
        target.CopyFrom(source);
        target.Accelerator.Synchronize();
        Assert.Equal(data, target.ToArray());
        using var back = group[0].Allocate<float>(data.Length);
        back.CopyFrom(target);
        Assert.Equal(data, back.ToArray());
    }
}
