using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace MoeRuntime.Accelerators.Cuda;

/// <summary>A failed driver API call: the call's text, the code and the driver's name for it.</summary>
public sealed class CudaException : AcceleratorException
{
    public CudaException(string call, CudaResult code, string errorName, string errorText)
        : base($"{call} failed: {errorName} ({(int)code}): {errorText}")
    {
        Call = call;
        Code = code;
        ErrorName = errorName;
    }

    public string Call { get; }
    public CudaResult Code { get; }
    public string ErrorName { get; }
}

internal static class CudaCheck
{
    /// <summary>Throws a <see cref="CudaException"/> naming <paramref name="call"/> unless the result is success.</summary>
    public static void ThrowIfFailed(CudaResult result, [CallerArgumentExpression(nameof(result))] string call = "")
    {
        if (result != CudaResult.Success)
            throw Failure(result, call);
    }

    public static CudaException Failure(CudaResult result, string call)
    {
        string name = result.ToString(), text = "";
        try
        {
            if (CudaDriver.cuGetErrorName(result, out var namePtr) == CudaResult.Success && namePtr != 0)
                name = Marshal.PtrToStringUTF8(namePtr) ?? name;
            if (CudaDriver.cuGetErrorString(result, out var textPtr) == CudaResult.Success && textPtr != 0)
                text = Marshal.PtrToStringUTF8(textPtr) ?? "";
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // The library itself is what failed; the enum name is all we have.
        }
        return new CudaException(call, result, name, text);
    }
}
