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
        if (launch.LocalRank >= CudaRuntimeInfo.DeviceCount)
            throw new NotSupportedException($"{launch}: LOCAL_RANK {launch.LocalRank} takes {launch.DeviceName}; this host has {CudaRuntimeInfo.DeviceCount} CUDA device(s)");
        return CudaAccelerator.Open(launch.LocalRank);
    }

    /// <summary>Failures of the group itself (a rank missing, NCCL failing), printed as one line with the rank.</summary>
    public static bool IsGroupFailure(Exception e) => e is TimeoutException or Collectives.Nccl.NcclException or Collectives.Nccl.NcclUnavailableException
        or Collectives.CollectiveTimeoutException or Collectives.CommunicatorFailedException or RendezvousPortException or System.Net.Sockets.SocketException;
}
