using BenchmarkDotNet.Running;
using MoeRuntime.Benchmarks.Infrastructure;

// BenchmarkDotNet suites, run in-process (the default toolchain rebuilds a project and fails once published).
//   dotnet run -c Release --project bench -- --filter '*Copy*'
//   bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll --filter '*'
// Select accelerators with MOE_BENCH_DEVICES=cpu,cuda:0 (default: every accelerator present).
return BenchmarkSwitcher.FromAssembly(typeof(BenchConfig).Assembly).Run(args, new BenchConfig()).Any(s => s.HasCriticalValidationErrors) ? 1 : 0;
