using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Accelerators;

/// <summary>
/// Accelerator.Synchronize from one thread while another thread captures a graph on the same GPU: it must wait for the
/// streams that run work and leave the capture intact (a context synchronize is refused then and breaks the capture; the
/// closing suite of 2026-11-30 failed two tests that way). Alone: in the parallel suite (2 x H200, ninth session) the
/// capture was broken twice by something else other test threads do on the GPU meanwhile, with the capture gate too
/// (not found which call: allocation, free and module load are the candidates), which this test is not about.
/// </summary>
[Collection(nameof(ConcurrentCaptureTests))]
public class ConcurrentCaptureTests
{
    private static readonly KernelSource TestSource = KernelSource.FromResource(typeof(ConcurrentCaptureTests).Assembly, "dependent_launch.cu");

    [Fact]
    public void SynchronizeDuringAnotherThreadsCaptureWaitsForTheRunningStreamsAndKeepsTheCapture()
    {
        var gpu = (CudaAccelerator)TestDevices.Get("cuda:0");
        var fill = gpu.LoadKernel(TestSource, "slow_fill");
        const int n = 4096, captured = 31, running = 47;
        using var capturedData = gpu.Allocate<int>(n);
        using var runningData = gpu.Allocate<int>(n);
        TestData.Poison(capturedData);
        TestData.Poison(runningData);
        gpu.Synchronize();
        using var capturing = (CudaStream)gpu.CreateStream();
        using var busy = (CudaStream)gpu.CreateStream();

        capturing.BeginCapture();
        fill.Launch(capturing, 4, 256, 0, capturedData, n, captured, 1_000L); // recorded, not run
        fill.Launch(busy, 4, 256, 0, runningData, n, running, 200_000L);      // runs for 200 us
        // Mid-capture, on another thread: this one must end the capture it began, and (thread-local mode) may not query
        // or read other streams until then, so the other thread also looks at the running stream.
        var (idleAfterSynchronize, runningValues) = OnAnotherThread(() =>
        {
            gpu.Synchronize();
            return (busy.IsIdle(), runningData.ToArray(busy));
        });
        Assert.True(idleAfterSynchronize, "Synchronize returned before the running stream's kernel ended");
        Assert.All(runningValues, v => Assert.Equal(running, v));

        using var graph = capturing.EndCapture(); // still valid: the capture was not broken
        graph.Launch(capturing);
        capturing.Synchronize();
        Assert.All(capturedData.ToArray(capturing), v => Assert.Equal(captured, v));
    }

    /// <summary>
    /// A stream forked into the capture (it waits on an event the capturing stream recorded, as a layer's shared-experts
    /// stream does) is part of it until it joins back: another thread's Synchronize must leave it alone too.
    /// </summary>
    [Fact]
    public void SynchronizeDuringACaptureLeavesTheForkedStreamInIt()
    {
        var gpu = (CudaAccelerator)TestDevices.Get("cuda:0");
        var fill = gpu.LoadKernel(TestSource, "slow_fill");
        const int n = 4096, main = 23, forked = 29;
        using var mainData = gpu.Allocate<int>(n);
        using var forkedData = gpu.Allocate<int>(n);
        TestData.Poison(mainData);
        TestData.Poison(forkedData);
        gpu.Synchronize();
        using var capturing = (CudaStream)gpu.CreateStream();
        using var side = (CudaStream)gpu.CreateStream();
        using var forkPoint = gpu.CreateEvent();
        using var joinPoint = gpu.CreateEvent();

        capturing.BeginCapture();
        forkPoint.Record(capturing);
        side.Wait(forkPoint);                                                   // side joins the capture
        fill.Launch(side, 4, 256, 0, forkedData, n, forked, 1_000L);           // recorded, not run
        fill.Launch(capturing, 4, 256, 0, mainData, n, main, 1_000L);
        Assert.True(side.IsCapturing);
        OnAnotherThread(() =>
        {
            gpu.Synchronize();
            return 0;
        });
        joinPoint.Record(side);
        capturing.Wait(joinPoint);                                              // and joins back before the end
        using var graph = capturing.EndCapture();                              // still valid: neither stream was synchronised
        Assert.False(side.IsCapturing);
        graph.Launch(capturing);
        capturing.Synchronize();
        Assert.All(mainData.ToArray(capturing), v => Assert.Equal(main, v));
        Assert.All(forkedData.ToArray(capturing), v => Assert.Equal(forked, v));
        gpu.Synchronize(); // the side stream is an ordinary stream again: a context synchronize, no error
    }

    private static T OnAnotherThread<T>(Func<T> work)
    {
        Exception? failure = null;
        T result = default!;
        var thread = new Thread(() =>
        {
            try
            {
                result = work();
            }
            catch (Exception e)
            {
                failure = e;
            }
        });
        thread.Start();
        thread.Join();
        if (failure is not null)
            throw new Xunit.Sdk.XunitException($"Synchronize on another thread during a capture threw: {failure}");
        return result;
    }
}

[CollectionDefinition(nameof(ConcurrentCaptureTests), DisableParallelization = true)]
public sealed class ConcurrentCaptureCollection;
