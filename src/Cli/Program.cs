using System.CommandLine;
using MoeRuntime.Accelerators.Nvrtc;
using MoeRuntime.Cli;
using MoeRuntime.Cli.Commands;
using MoeRuntime.Cli.Progress;

// moe: the MoeRuntime command. Logs go to stderr; tables and JSON to stdout.
var root = new RootCommand("MoeRuntime: run and study Mixture-of-Experts layers on CPUs and CUDA GPUs");
root.Options.Add(CliOptions.Verbose);
root.Subcommands.Add(DemoCommand.Create());
root.Subcommands.Add(RunCommand.Create());
root.Subcommands.Add(DevicesCommand.Create());
root.Subcommands.Add(EplbCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
root.Subcommands.Add(LaunchCommand.Create());
root.Subcommands.Add(SimulateCommand.Create());
using var compileLog = KernelCompileLog.Attach(NvrtcCompiler.Shared, Console.Error);
return await root.Parse(args).InvokeAsync();
