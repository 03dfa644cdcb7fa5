namespace MoeRuntime.Accelerators;

public enum AcceleratorKind
{
    Cpu,
    Cuda,
}
