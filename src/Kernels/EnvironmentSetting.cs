namespace MoeRuntime.Kernels;

/// <summary>
/// An A/B switch read from the process environment once, on first use (nothing in the runtime changes its environment
/// while it runs). The grouped GEMM read its switches on every call, a getenv and a parse each, five to seven a call: host
/// time on every launch of an eager forward. A bad value throws its ArgumentException at each read, never a cached one.
/// </summary>
internal sealed class EnvironmentSetting<T>(string name, Func<string?, T> parse)
{
    private T _value = default!;
    private volatile bool _read;

    public string Name { get; } = name;

    public T Value
    {
        get
        {
            if (!_read)
            {
                _value = parse(Environment.GetEnvironmentVariable(Name));
                _read = true;
            }
            return _value;
        }
    }
}
