namespace MoeRuntime.Runtime.Scaling;

/// <summary>The fits the scale model uses: weighted linear least squares and Nelder-Mead on relative error.</summary>
public static class CurveFit
{
    /// <summary>
    /// Fits <c>t = latency + bytes / bandwidth</c> to (bytes, us) points, minimising the squared relative error
    /// (each point weighted 1/t^2, so small messages count as much as large ones). The latency is kept >= 0.
    /// </summary>
    public static LinearCost FitLinear(IReadOnlyList<(double Bytes, double Us)> points)
    {
        ArgumentNullException.ThrowIfNull(points);
        if (points.Count < 2)
            throw new ArgumentException($"a latency + bandwidth fit needs at least 2 points; got {points.Count}", nameof(points));
        double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
        foreach (var (x, t) in points)
        {
            if (!(t > 0) || x < 0)
                throw new ArgumentException($"point ({x} bytes, {t} us): bytes must be >= 0 and time > 0", nameof(points));
            double w = 1 / (t * t);
            sw += w; sx += w * x; sy += w * t; sxx += w * x * x; sxy += w * x * t;
        }
        double det = sw * sxx - sx * sx;
        double slope = det > 0 ? (sw * sxy - sx * sy) / det : 0;
        double intercept = (sy - slope * sx) / sw;
        if (intercept < 0)
        {
            // Through the origin: t = slope * x.
            intercept = 0;
            slope = sxy / sxx;
        }
        if (!(slope > 0))
            throw new ArgumentException("time does not grow with bytes in these points; cannot fit a bandwidth", nameof(points));
        return new LinearCost(intercept, 1 / slope / 1e9 * 1e6);
    }

    /// <summary>
    /// Fits <c>t = cost * count</c> (a per-unit cost through the origin, e.g. host microseconds per kernel launch) to
    /// (count, us) points, minimising the squared relative error: cost = sum(x/t) / sum(x^2/t^2).
    /// </summary>
    public static double FitPerUnit(IReadOnlyList<(double Count, double Us)> points)
    {
        ArgumentNullException.ThrowIfNull(points);
        if (points.Count < 1)
            throw new ArgumentException("a per-unit fit needs at least 1 point", nameof(points));
        double sx = 0, sxx = 0;
        foreach (var (x, t) in points)
        {
            if (!(t > 0) || !(x > 0))
                throw new ArgumentException($"point ({x} units, {t} us): count and time must be > 0", nameof(points));
            sx += x / t;
            sxx += x * x / (t * t);
        }
        return sx / sxx;
    }

    /// <summary>Fits <see cref="GemmParams"/> to (weight bytes, flops, us) points by Nelder-Mead on the log parameters, minimising squared log error.</summary>
    public static GemmParams FitGemm(IReadOnlyList<(double WeightBytes, double Flops, double Us)> points)
    {
        ArgumentNullException.ThrowIfNull(points);
        if (points.Count < 3)
            throw new ArgumentException($"a grouped GEMM fit needs at least 3 points; got {points.Count}", nameof(points));
        double Loss(double[] p)
        {
            var g = new GemmParams(Math.Exp(p[0]), Math.Exp(p[1]), Math.Exp(p[2]));
            double sum = 0;
            foreach (var (b, f, t) in points)
            {
                double d = Math.Log(g.Us(b, f) / t);
                sum += d * d;
            }
            return sum;
        }
        // Start: bandwidth from the most weight-bound point, rate from the most flop-bound, launch from the smallest time.
        double bw = points.Max(p => p.WeightBytes / (p.Us * 1e-6)) / 1e9;
        double rate = points.Max(p => p.Flops / (p.Us * 1e-6)) / 1e12;
        double launch = Math.Max(0.5, points.Min(p => p.Us) * 0.1);
        var best = Minimize(Loss, [Math.Log(launch), Math.Log(bw), Math.Log(rate)], 0.5);
        for (int restart = 0; restart < 3; restart++)
            best = Minimize(Loss, best, 0.1);
        return new GemmParams(Math.Exp(best[0]), Math.Exp(best[1]), Math.Exp(best[2]));
    }

    /// <summary>Root-mean-square relative error of predictions against measurements.</summary>
    public static double RmsRelativeError(IEnumerable<(double Predicted, double Measured)> pairs)
    {
        var list = pairs.ToList();
        return list.Count == 0 ? 0 : Math.Sqrt(list.Average(p => Math.Pow((p.Predicted - p.Measured) / p.Measured, 2)));
    }

    /// <summary>Nelder-Mead simplex minimisation from <paramref name="start"/> with initial step <paramref name="step"/> per coordinate.</summary>
    public static double[] Minimize(Func<double[], double> f, double[] start, double step, int iterations = 4000)
    {
        int n = start.Length;
        var simplex = new double[n + 1][];
        var values = new double[n + 1];
        for (int i = 0; i <= n; i++)
        {
            simplex[i] = (double[])start.Clone();
            if (i > 0)
                simplex[i][i - 1] += step;
            values[i] = f(simplex[i]);
        }
        for (int it = 0; it < iterations; it++)
        {
            Array.Sort(values, simplex);
            if (values[n] - values[0] < 1e-14 * (1 + Math.Abs(values[0])))
                break;
            var centroid = new double[n];
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                    centroid[j] += simplex[i][j] / n;
            double[] Along(double t) => centroid.Select((c, j) => c + t * (simplex[n][j] - c)).ToArray();
            var reflected = Along(-1);
            double fr = f(reflected);
            if (fr < values[0])
            {
                var expanded = Along(-2);
                double fe = f(expanded);
                (simplex[n], values[n]) = fe < fr ? (expanded, fe) : (reflected, fr);
            }
            else if (fr < values[n - 1])
            {
                (simplex[n], values[n]) = (reflected, fr);
            }
            else
            {
                var contracted = fr < values[n] ? Along(-0.5) : Along(0.5);
                double fc = f(contracted);
                if (fc < Math.Min(fr, values[n]))
                {
                    (simplex[n], values[n]) = (contracted, fc);
                }
                else
                {
                    for (int i = 1; i <= n; i++)
                    {
                        simplex[i] = simplex[i].Select((x, j) => simplex[0][j] + 0.5 * (x - simplex[0][j])).ToArray();
                        values[i] = f(simplex[i]);
                    }
                }
            }
        }
        Array.Sort(values, simplex);
        return simplex[0];
    }
}
