using System.CommandLine;
using Microsoft.Extensions.Logging;

namespace MoeRuntime.Cli;

/// <summary>Options every command shares, and the logger they configure (stderr only, so stdout stays parseable).</summary>
internal static class CliOptions
{
    public static readonly Option<bool> Verbose = new("--verbose", "-v")
    {
        Description = "log debug detail to stderr",
        Recursive = true,
    };

    public static ILoggerFactory CreateLoggerFactory(ParseResult parse) => LoggerFactory.Create(builder =>
    {
        builder.SetMinimumLevel(parse.GetValue(Verbose) ? LogLevel.Debug : LogLevel.Information);
        builder.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        });
        builder.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
    });
}
