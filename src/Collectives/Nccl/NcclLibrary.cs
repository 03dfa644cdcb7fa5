using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Native;

namespace MoeRuntime.Collectives.Nccl;

/// <summary>Whether libnccl loads, its version, and the clear error when it does not.</summary>
public static class NcclLibrary
{
    private static readonly Lazy<(bool Ok, string Reason)> Probe = new(() =>
    {
        if (!NativeLibraryProbe.TryLoad(Nccl.Library, out _, out string tried))
            return (false, $"NCCL library libnccl.so.2 not found (tried {tried}); our ring, two-shot and one-shot algorithms work without it");
        return (true, "");
    });

    public static bool IsAvailable => Probe.Value.Ok;

    /// <summary>Why NCCL cannot be used, or null when it can.</summary>
    public static string? UnavailableReason => Probe.Value.Ok ? null : Probe.Value.Reason;

    /// <summary>Throws <see cref="NcclUnavailableException"/> naming the library unless NCCL loads.</summary>
    public static void EnsureAvailable()
    {
        if (!Probe.Value.Ok)
            throw new NcclUnavailableException(Probe.Value.Reason);
    }

    /// <summary>NCCL's version as major.minor.patch (ncclGetVersion: major*10000 + minor*100 + patch from 2.9 on).</summary>
    public static Version Version
    {
        get
        {
            EnsureAvailable();
            NcclCheck.ThrowIfFailed(Nccl.ncclGetVersion(out int code));
            return new Version(code / 10000, code / 100 % 100, code % 100);
        }
    }
}

/// <summary>NCCL is not installed (or not where the probe looks).</summary>
public sealed class NcclUnavailableException(string message) : AcceleratorException(message);

/// <summary>A failed NCCL call: the call's text, the code and ncclGetErrorString.</summary>
public sealed class NcclException : AcceleratorException
{
    internal NcclException(string call, NcclResult code, string text)
        : base($"{call} failed: {code} ({(int)code}): {text}")
    {
        Call = call;
        Code = (int)code;
    }

    public string Call { get; }
    public int Code { get; }
}

internal static class NcclCheck
{
    public static void ThrowIfFailed(NcclResult result, [CallerArgumentExpression(nameof(result))] string call = "")
    {
        if (result == NcclResult.Success)
            return;
        string text = "";
        try
        {
            nint p = Nccl.ncclGetErrorString(result);
            text = p == 0 ? "" : Marshal.PtrToStringUTF8(p) ?? "";
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Reporting must not fail on top of the failure.
        }
        throw new NcclException(call, result, text);
    }

    public static NcclDataType DataType(DType dtype) => dtype switch
    {
        DType.F32 => NcclDataType.Float32,
        DType.F16 => NcclDataType.Float16,
        DType.BF16 => NcclDataType.BFloat16,
        DType.I32 => NcclDataType.Int32,
        DType.I64 => NcclDataType.Int64,
        _ => throw new ArgumentException($"NCCL collectives here take f32, f16, bf16 (or i32, i64 for counts); got {DTypes.Name(dtype)}", nameof(dtype)),
    };
}
