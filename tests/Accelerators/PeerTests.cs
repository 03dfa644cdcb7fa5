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

    /// <summary>
    /// Disposing a stream, event or module of another GPU switches the thread's context; the next call on the first
    /// GPU must switch back (it once skipped that, and allocations and synchronisations went to the other GPU).
    /// </summary>
    [Fact]
    public void WorkAfterDisposingAnotherGpusObjectsStaysOnItsOwnGpu()
    {
        var group = TestDevices.GetGroup("cuda", 2);
        var (g0, g1) = ((CudaAccelerator)group[0], (CudaAccelerator)group[1]);
        for (int round = 0; round < 3; round++)
        {
            IDisposable other = round switch
            {
                0 => g1.CreateStream(),
                1 => g1.CreateEvent(),
                _ => g1.AllocatePinned<float>(4),
            };
            using (g0.Allocate<float>(16)) { }   // this thread now has g0 current
            other.Dispose();                      // switches to g1 to destroy it
            using var buffer = g0.Allocate<float>(16);
            CudaCheck.ThrowIfFailed(CudaDriver.cuPointerGetAttribute(out int ordinal, CudaDriver.PointerAttributeDeviceOrdinal, (ulong)buffer.Pointer));
            Assert.True(ordinal == g0.Device, $"round {round}: a buffer of {g0.Name} was allocated on device {ordinal}");
            CudaCheck.ThrowIfFailed(CudaDriver.cuCtxGetCurrent(out nint current));
            Assert.Equal(g0.Context, current);
        }
    }
}
