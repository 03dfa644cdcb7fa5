using System.CommandLine;
using MoeRuntime.Cli.Launch;

namespace MoeRuntime.Cli.Commands;

/// <summary>
/// <c>moe launch --nproc N [--master-addr A] [--master-port P] -- &lt;moe arguments&gt;</c>: N local ranks of the same moe
/// executable with the torchrun-style environment, so that <c>moe run --parallel tp|ep</c> and <c>moe bench allreduce</c>
/// run one process per GPU (rank r on cuda:r) through NCCL. Output comes back as <c>[rank r] line</c>; when a rank
/// exits non-zero the others are killed and the launch exits with its code. Without --master-port a free port is used.
/// </summary>
internal static class LaunchCommand
{
    public static Command Create()
    {
        var nproc = new Option<int>("--nproc", "--nproc-per-node") { Description = "processes (ranks) to start on this host, one per GPU", Required = true };
        var address = new Option<string>("--master-addr") { Description = "address where rank 0 serves the NCCL id", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int?>("--master-port") { Description = "port of that rendezvous (default: a free port)" };
        var arguments = new Argument<string[]>("moe-arguments") { Description = "the moe command each rank runs, after --, e.g. -- run --model DIR ... --parallel tp", Arity = ArgumentArity.OneOrMore };
        var command = new Command("launch", "start one moe process per GPU on this host (torchrun-style environment) and forward their output")
        {
            nproc, address, port, arguments,
        };
        command.SetAction(async (parse, cancellation) =>
        {
            int n = parse.GetValue(nproc);
            int? p = parse.GetValue(port);
            if (n < 1)
            {
                Console.Error.WriteLine($"moe launch: --nproc {n}: at least 1");
                return 2;
            }
            if (p is < 1 or > 65535)
            {
                Console.Error.WriteLine($"moe launch: --master-port {p}: a TCP port, 1..65535");
                return 2;
            }
            try
            {
                return await LocalLauncher.RunAsync(ChildCommand.ThisMoe(), parse.GetValue(arguments)!, n, parse.GetValue(address)!, p,
                    Console.Out, Console.Error, cancellation).ConfigureAwait(false);
            }
            catch (LaunchException e)
            {
                Console.Error.WriteLine($"moe launch: {e.Message}");
                return 2;
            }
        });
        return command;
    }
}
