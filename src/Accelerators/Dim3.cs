namespace MoeRuntime.Accelerators;

/// <summary>A grid or block extent, as CUDA launches take it.</summary>
public readonly record struct Dim3(uint X, uint Y = 1, uint Z = 1)
{
    public static implicit operator Dim3(int x) => new(checked((uint)x));
    public static implicit operator Dim3(uint x) => new(x);
    public long Volume => (long)X * Y * Z;
}
