using MoeRuntime.Runtime.Checkpoints;
using Spectre.Console;

namespace MoeRuntime.Cli.Progress;

/// <summary>
/// Shows a layer load's <see cref="LoadProgress"/> on stderr (stdout stays for tables): a Spectre.Console
/// progress bar on an interactive terminal, plain lines (about every 10% and at the end of each stage)
/// when stderr is redirected. The load runs inside <see cref="Run{T}"/>, reporting synchronously.
/// </summary>
internal static class LoadProgressDisplay
{
    public static T Run<T>(string title, Func<IProgress<LoadProgress>, T> load)
    {
        ArgumentNullException.ThrowIfNull(load);
        if (Console.IsErrorRedirected)
            return load(new PlainLines(title, Console.Error));

        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        return console.Progress().AutoClear(false).Start(context =>
        {
            var bars = new Dictionary<string, ProgressTask>(StringComparer.Ordinal);
            return load(new Reporter(report =>
            {
                if (!bars.TryGetValue(report.Stage, out var bar))
                    bars[report.Stage] = bar = context.AddTask($"{Markup.Escape(title)}: {Markup.Escape(report.Stage)}", maxValue: Math.Max(report.Total, 1));
                bar.Value = report.Done;
                bar.Description = $"{Markup.Escape(title)}: {Markup.Escape(report.Stage)} ({report.BytesRead / (1024.0 * 1024.0):F1} MB read)";
            }));
        });
    }

    /// <summary>Plain-text reporter: one line per ~10% of a stage and one at its end.</summary>
    internal sealed class PlainLines(string title, TextWriter writer) : IProgress<LoadProgress>
    {
        private readonly Dictionary<string, int> _lastDecile = new(StringComparer.Ordinal);

        public void Report(LoadProgress value)
        {
            int decile = value.Total <= 0 ? 10 : (int)(10L * value.Done / value.Total);
            if (_lastDecile.TryGetValue(value.Stage, out int last) && last == decile)
                return;
            _lastDecile[value.Stage] = decile;
            writer.WriteLine($"{title}: {value.Stage} {value.Done}/{value.Total} ({value.BytesRead / (1024.0 * 1024.0):F1} MB read)");
        }
    }

    private sealed class Reporter(Action<LoadProgress> report) : IProgress<LoadProgress>
    {
        public void Report(LoadProgress value) => report(value);
    }
}
