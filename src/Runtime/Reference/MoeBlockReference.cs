using MoeRuntime.Runtime.Models;

namespace MoeRuntime.Runtime.Reference;

/// <summary>
/// The MoE block computed plainly on the CPU in F64, token by token: the oracle the real layer and the
/// transformers fixtures are checked against. For each token x [H]:
/// <code>
/// logits[e]  = gate[e] . x
/// softmax families (mixtral, qwen2_moe, qwen3_moe):
///   p = softmax(logits); ids = top-k of p; w = p[ids]; if renormalise: w /= sum(w)
/// deepseek_v3 (sigmoid):
///   p = sigmoid(logits); c = p + bias                       (bias only steers the choice)
///   group score = sum of the two largest c in each of n_group groups; keep topk_group groups
///   c of experts outside kept groups = 0 (as transformers' masked_fill(.., 0.0))
///   ids = top-k of c; w = p[ids]; if norm_topk_prob: w /= (sum(w) + 1e-20); w *= routed_scaling_factor
/// y = sum_j w_j * down_j(act(gate_j x) * up_j x)  + [sigmoid(sharedGate . x)] * shared(x)
/// </code>
/// Ties in top-k go to the lower expert id.
/// </summary>
public sealed class MoeBlockReference
{
    private readonly ModelConfig _config;
    private readonly int _hidden, _intermediate, _experts;
    private readonly double[] _router, _gateUp, _down;
    private readonly double[]? _bias, _sharedGateUp, _sharedDown, _sharedGate;
    private readonly Func<double, double> _activation;

    public MoeBlockReference(MoeLayerWeights weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        _config = weights.Config;
        _hidden = _config.HiddenSize;
        _intermediate = _config.MoeIntermediateSize;
        _experts = _config.NumExperts;
        _router = weights.RouterGate.ToDoubles();
        _gateUp = weights.ExpertGateUp.ToDoubles();
        _down = weights.ExpertDown.ToDoubles();
        _bias = weights.ScoreCorrectionBias?.Select(b => (double)b).ToArray();
        _sharedGateUp = weights.SharedGateUp?.ToDoubles();
        _sharedDown = weights.SharedDown?.ToDoubles();
        _sharedGate = weights.SharedExpertGate?.ToDoubles();
        _activation = Activations.Get(_config.HiddenAct);
        if (_config.HasScoreCorrectionBias && _bias is null)
            throw new ArgumentException("deepseek_v3 weights need e_score_correction_bias", nameof(weights));
        if (_config.SharedIntermediateSize > 0 && (_sharedGateUp is null || _sharedDown is null))
            throw new ArgumentException("config has shared experts but the weights have none", nameof(weights));
    }

    public ModelConfig Config => _config;

    /// <summary>Routing of one token: the chosen experts (descending by choice score) and their weights.</summary>
    public (int[] Ids, double[] Weights) Route(ReadOnlySpan<double> token)
    {
        if (token.Length != _hidden)
            throw new ArgumentException($"token has {token.Length} values, hidden size is {_hidden}", nameof(token));
        var logits = new double[_experts];
        for (int e = 0; e < _experts; e++)
            logits[e] = Dot(_router.AsSpan(e * _hidden, _hidden), token);

        double[] probabilities = _config.ScoringFunction == ScoringFunction.Softmax ? Softmax(logits) : logits.Select(Sigmoid).ToArray();
        var choice = (double[])probabilities.Clone();
        if (_bias is not null)
            for (int e = 0; e < _experts; e++)
                choice[e] += _bias[e];

        if (_config.NumGroups > 1)
            MaskToTopGroups(choice);

        int[] ids = TopK(choice, _config.TopK);
        var weights = ids.Select(id => probabilities[id]).ToArray();
        if (_config.NormTopKProb)
        {
            // deepseek_v3 adds 1e-20 to the denominator; the softmax families do not.
            double sum = weights.Sum() + (_config.Family == ModelFamily.DeepseekV3 ? 1e-20 : 0);
            for (int j = 0; j < weights.Length; j++)
                weights[j] /= sum;
        }
        for (int j = 0; j < weights.Length; j++)
            weights[j] *= _config.RoutedScalingFactor;
        return (ids, weights);
    }

    /// <summary>The block's output for <paramref name="hidden"/> [T, H] (row-major): [T, H] in F64.</summary>
    public double[] Forward(ReadOnlySpan<double> hidden)
    {
        if (hidden.Length % _hidden != 0)
            throw new ArgumentException($"hidden states hold {hidden.Length} values, not a multiple of the hidden size {_hidden}", nameof(hidden));
        int tokens = hidden.Length / _hidden;
        var output = new double[hidden.Length];
        for (int t = 0; t < tokens; t++)
        {
            var token = hidden.Slice(t * _hidden, _hidden);
            var result = output.AsSpan(t * _hidden, _hidden);
            var (ids, weights) = Route(token);
            for (int j = 0; j < ids.Length; j++)
            {
                long gateUpBase = (long)ids[j] * 2 * _intermediate * _hidden;
                long downBase = (long)ids[j] * _hidden * _intermediate;
                AddExpert(token, _gateUp.AsSpan((int)gateUpBase, 2 * _intermediate * _hidden),
                    _down.AsSpan((int)downBase, _hidden * _intermediate), _intermediate, weights[j], result);
            }
            if (_sharedGateUp is not null && _sharedDown is not null)
            {
                double scale = _sharedGate is null ? 1.0 : Sigmoid(Dot(_sharedGate, token));
                AddExpert(token, _sharedGateUp, _sharedDown, _config.SharedIntermediateSize, scale, result);
            }
        }
        return output;
    }

    public double[] Forward(ReadOnlySpan<float> hidden)
    {
        var values = new double[hidden.Length];
        for (int i = 0; i < values.Length; i++)
            values[i] = hidden[i];
        return Forward(values);
    }

    /// <summary>result += scale * down (act(gate x) * up x), gateUp [2I, H] (gate rows first), down [H, I].</summary>
    private void AddExpert(ReadOnlySpan<double> token, ReadOnlySpan<double> gateUp, ReadOnlySpan<double> down, int intermediate,
        double scale, Span<double> result)
    {
        var activated = new double[intermediate];
        for (int i = 0; i < intermediate; i++)
        {
            double gate = Dot(gateUp.Slice(i * _hidden, _hidden), token);
            double up = Dot(gateUp.Slice((intermediate + i) * _hidden, _hidden), token);
            activated[i] = _activation(gate) * up;
        }
        for (int h = 0; h < _hidden; h++)
            result[h] += scale * Dot(down.Slice(h * intermediate, intermediate), activated);
    }

    /// <summary>DeepSeek's group-limited choice: zero the scores of experts outside the topk_group best groups.</summary>
    private void MaskToTopGroups(double[] choice)
    {
        int groupSize = _experts / _config.NumGroups;
        var groupScores = new double[_config.NumGroups];
        for (int g = 0; g < _config.NumGroups; g++)
        {
            var members = choice.AsSpan(g * groupSize, groupSize).ToArray();
            int[] best = TopK(members, Math.Min(2, groupSize));
            groupScores[g] = best.Sum(i => members[i]);
        }
        var keptGroups = TopK(groupScores, _config.TopKGroups).ToHashSet();
        for (int e = 0; e < _experts; e++)
            if (!keptGroups.Contains(e / groupSize))
                choice[e] = 0.0;
    }

    /// <summary>Indices of the k largest values, largest first; ties to the lower index.</summary>
    public static int[] TopK(IReadOnlyList<double> values, int k)
    {
        var order = Enumerable.Range(0, values.Count).ToArray();
        Array.Sort(order, (a, b) => values[a] != values[b] ? values[b].CompareTo(values[a]) : a.CompareTo(b));
        return order[..k];
    }

    private static double[] Softmax(double[] logits)
    {
        double max = logits.Max();
        var result = logits.Select(l => Math.Exp(l - max)).ToArray();
        double sum = result.Sum();
        for (int i = 0; i < result.Length; i++)
            result[i] /= sum;
        return result;
    }

    private static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));

    private static double Dot(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        double sum = 0;
        for (int i = 0; i < a.Length; i++)
            sum += a[i] * b[i];
        return sum;
    }
}
