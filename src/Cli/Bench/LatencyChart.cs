using System.Globalization;
using System.Text;

namespace MoeRuntime.Cli.Bench;

/// <summary>An SVG line chart of latency (us) against message size (bytes), both axes log scale, one line per series.</summary>
internal static class LatencyChart
{
    private static readonly string[] Colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

    public static string Render(string title, IReadOnlyDictionary<string, IReadOnlyList<(long Bytes, double Us)>> series)
    {
        const int width = 760, height = 480, left = 70, right = 150, top = 40, bottom = 60;
        var points = series.Values.SelectMany(s => s).Where(p => p.Bytes > 0 && p.Us > 0).ToList();
        var svg = new StringBuilder();
        svg.AppendLine(Invariant($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">"));
        svg.AppendLine(Invariant($"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>"));
        svg.AppendLine(Invariant($"<text x=\"{width / 2}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{Escape(title)}</text>"));
        if (points.Count == 0)
        {
            svg.AppendLine("</svg>");
            return svg.ToString();
        }
        // Whole decades around the data.
        double xMin = Math.Floor(Math.Log10(points.Min(p => p.Bytes))), xMax = Math.Ceiling(Math.Log10(points.Max(p => p.Bytes)));
        double yMin = Math.Floor(Math.Log10(points.Min(p => p.Us))), yMax = Math.Ceiling(Math.Log10(points.Max(p => p.Us)));
        if (xMax <= xMin) xMax = xMin + 1;
        if (yMax <= yMin) yMax = yMin + 1;
        double plotW = width - left - right, plotH = height - top - bottom;
        double X(double bytes) => left + (Math.Log10(bytes) - xMin) / (xMax - xMin) * plotW;
        double Y(double us) => top + plotH - (Math.Log10(us) - yMin) / (yMax - yMin) * plotH;

        svg.AppendLine(Invariant($"<rect x=\"{left}\" y=\"{top}\" width=\"{plotW}\" height=\"{plotH}\" fill=\"none\" stroke=\"#444\"/>"));
        for (double d = xMin; d <= xMax; d++)
        {
            double x = left + (d - xMin) / (xMax - xMin) * plotW;
            svg.AppendLine(Invariant($"<line x1=\"{x:F1}\" y1=\"{top}\" x2=\"{x:F1}\" y2=\"{top + plotH}\" stroke=\"#ddd\"/>"));
            svg.AppendLine(Invariant($"<text x=\"{x:F1}\" y=\"{top + plotH + 18}\" text-anchor=\"middle\">{Escape(SizeText(Math.Pow(10, d)))}</text>"));
        }
        for (double d = yMin; d <= yMax; d++)
        {
            double y = top + plotH - (d - yMin) / (yMax - yMin) * plotH;
            svg.AppendLine(Invariant($"<line x1=\"{left}\" y1=\"{y:F1}\" x2=\"{left + plotW}\" y2=\"{y:F1}\" stroke=\"#ddd\"/>"));
            svg.AppendLine(Invariant($"<text x=\"{left - 8}\" y=\"{y + 4:F1}\" text-anchor=\"end\">{Math.Pow(10, d):G4}</text>"));
        }
        svg.AppendLine(Invariant($"<text x=\"{left + plotW / 2}\" y=\"{height - 15}\" text-anchor=\"middle\">message size (bytes)</text>"));
        svg.AppendLine(Invariant($"<text x=\"18\" y=\"{top + plotH / 2}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {top + plotH / 2})\">latency (us)</text>"));
        int index = 0;
        foreach (var (name, values) in series)
        {
            string color = Colors[index % Colors.Length];
            var line = values.Where(p => p.Bytes > 0 && p.Us > 0).OrderBy(p => p.Bytes).Select(p => Invariant($"{X(p.Bytes):F1},{Y(p.Us):F1}"));
            svg.AppendLine($"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{string.Join(' ', line)}\"/>");
            double ly = top + 10 + index * 20;
            svg.AppendLine(Invariant($"<line x1=\"{left + plotW + 12}\" y1=\"{ly}\" x2=\"{left + plotW + 36}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"2\"/>"));
            svg.AppendLine(Invariant($"<text x=\"{left + plotW + 42}\" y=\"{ly + 4}\">{Escape(name)}</text>"));
            index++;
        }
        svg.AppendLine("</svg>");
        return svg.ToString();
    }

    public static string SizeText(double bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (1L << 30):G3}G",
        >= 1L << 20 => $"{bytes / (1L << 20):G3}M",
        >= 1L << 10 => $"{bytes / (1L << 10):G3}K",
        _ => bytes.ToString("0", CultureInfo.InvariantCulture),
    };

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    private static string Escape(string text) => text.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;");
}
