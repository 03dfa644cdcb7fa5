using BenchmarkDotNet.Running;
using MoeRuntime.Benchmarks.Infrastructure;

// Two ways in:
//   sweep tables (device-timed, medians, CUDA graphs where launch overhead would dominate):
//     dotnet run -c Release --project bench -- sweep <name> [--device cuda:0] [--json out.json]
//     names: see Sweeps.All (each prints one table: shape, time, GB/s or TFLOP/s, floor, ratio)
//   BenchmarkDotNet suites, in-process (the default toolchain rebuilds a project and fails once published):
//     dotnet run -c Release --project bench -- --filter '*Copy*'
//     Select accelerators with MOE_BENCH_DEVICES=cpu,cuda:0 (default: every accelerator present).
if (args.Length > 0 && args[0] == "sweep")
    return Sweeps.Run(args[1..]);
return BenchmarkSwitcher.FromAssembly(typeof(BenchConfig).Assembly).Run(args, new BenchConfig()).Any(s => s.HasCriticalValidationErrors) ? 1 : 0;
