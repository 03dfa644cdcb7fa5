namespace MoeRuntime.Runtime.Models;

/// <summary>The expert activations config.json may name (hidden_act), in F64 for the reference.</summary>
public static class Activations
{
    public const string Known = "silu, swish, gelu, gelu_pytorch_tanh, gelu_new, relu";

    public static bool IsKnown(string name) => name is "silu" or "swish" or "gelu" or "gelu_pytorch_tanh" or "gelu_new" or "relu";

    public static Func<double, double> Get(string name) => name switch
    {
        "silu" or "swish" => x => x / (1 + Math.Exp(-x)),
        "gelu" => x => 0.5 * x * (1 + Erf(x / Math.Sqrt(2))),
        "gelu_pytorch_tanh" or "gelu_new" => x => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x))),
        "relu" => x => Math.Max(0, x),
        _ => throw new ModelConfigException($"hidden_act '{name}' is not supported ({Known})"),
    };

    /// <summary>erf to about 1e-16 relative: series for |x| &lt; 3, continued fraction (Lentz) beyond.</summary>
    public static double Erf(double x)
    {
        double ax = Math.Abs(x);
        double result;
        if (ax < 3)
        {
            // erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))
            double term = ax, sum = ax, x2 = ax * ax;
            for (int n = 1; n < 200 && Math.Abs(term) > 1e-18 * Math.Abs(sum); n++)
            {
                term *= -x2 / n;
                sum += term / (2 * n + 1);
            }
            result = 2 / Math.Sqrt(Math.PI) * sum;
        }
        else
        {
            // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...))))
            double fraction = ax;
            for (int n = 60; n >= 1; n--)
                fraction = ax + n / 2.0 / fraction;
            result = 1 - Math.Exp(-ax * ax) / Math.Sqrt(Math.PI) / fraction;
        }
        return x < 0 ? -result : result;
    }
}
