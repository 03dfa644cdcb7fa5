using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Collectives.Distributed;

namespace MoeRuntime.Cli.Distributed;

/// <summary>The GPU of one rank: cuda:LOCAL_RANK, opened alone (not every GPU of the host, as AcceleratorContext does).</summary>
internal static class RankDevice
{
    public static CudaAccelerator Open(LaunchEnvironment launch)
    {
        if (!CudaRuntimeInfo.IsAvailable)
            throw new NotSupportedException($"{launch}: ranks run on CUDA GPUs through NCCL, and CUDA is not available: {CudaRuntimeInfo.UnavailableReason}");
        return CudaAccelerator.Open(Ordinal(launch, CudaRuntimeInfo.DeviceCount, Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES")));
    }

    /// <summary>
    /// cuda:LOCAL_RANK; or cuda:0 when the launcher gave each rank a single GPU through CUDA_VISIBLE_DEVICES
    /// (mpirun / Slurm GPU binding), where LOCAL_RANK no longer indexes the visible devices.
    /// </summary>
    internal static int Ordinal(LaunchEnvironment launch, int deviceCount, string? visibleDevices)
    {
        if (launch.LocalRank < deviceCount)
            return launch.LocalRank;
        if (deviceCount == 1 && !string.IsNullOrWhiteSpace(visibleDevices) && !visibleDevices.Contains(','))
            return 0;
        throw new NotSupportedException($"{launch}: LOCAL_RANK {launch.LocalRank} takes {launch.DeviceName}; this process sees {deviceCount} CUDA device(s)" +
            (string.IsNullOrWhiteSpace(visibleDevices) ? "" : $" (CUDA_VISIBLE_DEVICES={visibleDevices})"));
    }

    /// <summary>Failures of the group itself (a rank missing, NCCL failing), printed as one line with the rank.</summary>
    public static bool IsGroupFailure(Exception e) => e is TimeoutException or Collectives.Nccl.NcclException or Collectives.Nccl.NcclUnavailableException
        or Collectives.CollectiveTimeoutException or Collectives.CommunicatorFailedException or RendezvousPortException or System.Net.Sockets.SocketException;
}
