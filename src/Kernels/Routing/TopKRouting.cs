using System.Runtime.CompilerServices;
using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;

namespace MoeRuntime.Kernels.Routing;

/// <summary>
/// Top-k routing: router logits [tokens, experts] (F32/BF16/F16) to expert ids [tokens, k] (I32), weights
/// [tokens, k] (F32) and tokens-per-expert counts [experts] (I32), in one fused kernel.
/// <para>
/// Softmax: weights = softmax(logits) at the k largest logits (renormalised over the k when asked).
/// DeepSeekGrouped: scores = sigmoid(logits); keys = scores + bias; group score = sum of the group's two
/// largest keys; keep the TopKGroups best groups; choose the k largest keys in them; weights = the
/// chosen scores (renormalised: / (sum + 1e-20)); then weights *= RoutedScalingFactor (both kinds).
/// </para>
/// <para>
/// Ids of a token are listed by decreasing key; ties go to the lower expert (and group) id. Non-finite
/// logits: NaN is taken as -float.MaxValue and +-inf as +-float.MaxValue, so ids are always in range and
/// distinct, and weights finite (a NaN logit gets weight 0 unless it had to be chosen).
/// </para>
/// Example (softmax, k = 2, renormalise): logits [1, 3, 3, 0] -> ids [1, 2], weights [0.5, 0.5], counts [0, 1, 1, 0].
/// </summary>
public static partial class TopKRouting
{
    public const int MaxExperts = 512;
    public const int MaxTopK = 16;
    public const int MaxGroups = 32;
    private const int MaxWarpsPerBlock = 16; // ROUTING_WARPS in topk_routing.cu
    private const int WarpsPerSm = 32;       // the grid cap: warps stride over tokens beyond it
    /// <summary>
    /// From this many tokens the contiguous path routes two tokens per warp (topk_routing_contiguous_x2_*): at many
    /// tokens one warp's chain of dependent shuffles and warp reductions is latency-bound, and two interleaved chains
    /// overlap; below it, one token per warp keeps more warps running.
    /// </summary>
    internal const int TwoTokensPerWarpFrom = 1024;
    /// <summary>
    /// From this many tokens the two-token path runs persistent when MOE_ROUTING_PERSISTENT=1 (topk_routing_contiguous_x2p_*):
    /// fewer warps, each looping over <see cref="PairsPerWarp"/> or more token pairs with the next pair's rows staged by
    /// cp.async while the current pair is routed. Off by default: H200, 2026-11-30, DeepSeek-V3 T=8192, one session:
    /// one-pass 14.60 us, persistent with at least 1 / 2 / 4 pairs a warp 14.46 / 15.38 / 18.54 us; softmax E=128
    /// 6.97 against 7.40 / 7.94 / 10.59. The load is not what bounds it (instruction issue is).
    /// </summary>
    internal const int DefaultPersistentFrom = 8192;
    /// <summary>
    /// From this many tokens DeepSeek-V3's shape takes the token-team kernel (topk_routing_teams_*: 8 lanes a token,
    /// 4 tokens a warp, a group a lane, the choices by rank among the few candidates); MOE_ROUTING_TEAMS=0 at start-up
    /// keeps it off, =N takes it from N tokens. About 1310 SASS instructions a warp trip (4 tokens) on the common path
    /// (sm_90; about 1840 before route6 staged the rows coalesced and cheapened the keys), but half the warps of the
    /// two-token path, each with a longer chain. Before route6: H200,
    /// 2026-11-30, f32, graphs, same run (teams / two-token): T=1 4.62 / 3.59 us, T=128 6.79 / 4.40, T=1024 7.15 / 6.23,
    /// T=8192 11.06 / 14.61. So from 4096 tokens (not measured between 1024 and 8192).
    /// </summary>
    internal const int DefaultTeamsFrom = 4096;
    private const int TeamWarpsPerBlock = 8; // ROUTING_TEAM_WARPS in topk_routing.cu
    private const int TeamBlocksPerSm = 4;   // its __launch_bounds__: 32 warps an SM
    private const int PersistentWarpsPerBlock = 8; // ROUTING_PERSISTENT_WARPS in topk_routing.cu
    private const int PersistentBlocksPerSm = 4;   // its __launch_bounds__: 32 warps an SM
    private const int MaxWorkspaceBlocks = (1 << 11) - 1; // workspace word: arrivals in bits 21-31 (ROUTING_COUNT_BITS)
    private const int MaxWorkspaceTokens = 1 << 21;       // and tokens counted in bits 0-20

    /// <summary>
    /// Elements of the optional <see cref="Run"/> workspace for <paramref name="experts"/> experts: count
    /// accumulators (and one spare element). Zero it once after allocating (<c>Clear</c>); every launch leaves it zero
    /// again. With it (below 2^21 tokens), a CUDA routing is one kernel launch and nothing else (no memset of the counts). One
    /// workspace per stream: launches sharing one must not overlap.
    /// </summary>
    public static int WorkspaceElements(int experts) => experts + 1;

    private static readonly Lazy<KernelSource> Source = new(() => KernelSource.FromResource(typeof(TopKRouting).Assembly, "topk_routing.cu"));

    /// <summary>
    /// Routes <paramref name="tokens"/> tokens. Output buffers need at least tokens * k (ids, weights) and
    /// experts (counts) elements; counts are overwritten. Work is ordered on <paramref name="stream"/>
    /// (default: the accelerator's default stream). <paramref name="workspace"/> (optional,
    /// <see cref="WorkspaceElements"/>, zero when first used) lets the CUDA path do all of it in one launch;
    /// without it a routing of more than one block's tokens also zeroes the counts with a memset first.
    /// </summary>
    public static void Run(MemoryBuffer logits, int tokens, int experts, TopKRoutingOptions options,
        MemoryBuffer<int> ids, MemoryBuffer<float> weights, MemoryBuffer<int> expertCounts, AcceleratorStream? stream = null,
        MemoryBuffer<int>? workspace = null)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(options);
        var accelerator = logits.Accelerator;
        Validate(logits, tokens, experts, options, ids, weights, expertCounts);
        if (workspace is not null)
            HostRows.Check(workspace, accelerator, WorkspaceElements(experts), nameof(workspace));
        var s = stream ?? accelerator.DefaultStream;
        if (!ReferenceEquals(s.Accelerator, accelerator))
            throw new ArgumentException($"stream of {s.Accelerator.Name} used with logits on {accelerator.Name}", nameof(stream));

        if (accelerator is CudaAccelerator cuda)
        {
            bool grouped = options.Kind == RoutingKind.DeepSeekGrouped;
            int perLane = 1;
            while (perLane * 32 < experts)
                perLane *= 2; // expert slots per lane: 1, 2, 4, 8 or 16
            bool contiguous = UsesContiguousLayout(logits, experts, perLane, options);
            if (UsesThreadPath(experts, options, tokens))
            {
                RunThreadPerToken(cuda, (CudaStream)s, logits, tokens, experts, options, ids, weights, expertCounts, workspace);
                return;
            }
            bool teams = UsesTeamPath(contiguous, experts, options, tokens);
            bool persistent = !teams && UsesPersistentPath(contiguous, perLane, logits.ElementSize, tokens);
            int tokensPerWarp = teams ? 4 : persistent ? 2 : TokensPerWarp(contiguous, tokens);
            // Few tokens: small blocks spread them over the SMs; many: big blocks, at most WarpsPerSm warps per
            // SM, warps striding over tokens, so that few blocks add their count histograms (counted in warp tasks:
            // a task is one token, or two on the two-tokens-per-warp path).
            int sms = Math.Max(cuda.Info.MultiprocessorCount, 1);
            long warpTasks = ((long)tokens + tokensPerWarp - 1) / tokensPerWarp;
            int warpsPerBlock = warpTasks >= MaxWarpsPerBlock * sms ? MaxWarpsPerBlock : 4;
            int blocks = (int)Math.Clamp((warpTasks + warpsPerBlock - 1) / warpsPerBlock, 1,
                Math.Min((long)sms * (WarpsPerSm / warpsPerBlock), MaxWorkspaceBlocks));
            string layout = !contiguous ? "" : persistent ? "contiguous_x2p_" : tokensPerWarp == 2 ? "contiguous_x2_" : "contiguous_";
            string name = teams ? $"topk_routing_teams_{HostRows.Suffix(logits.DType)}" : $"topk_routing_{layout}{HostRows.Suffix(logits.DType)}_{perLane}";
            var kernel = cuda.LoadKernel(Source.Value, name, BuildOptions(name, logits.DType, SigmoidByDivision));
            if (teams)
            {
                // About two blocks an SM, of 2 to 8 warps (4 tokens each): every block stages the bias and adds its
                // count histogram with an atomic per expert, so more blocks cost. H200, 2026-11-30: with 2-warp blocks
                // below 8 warps an SM, T=4096 (512 blocks) took 10.19 us against 7.91 at T=8192 (256 blocks of 8).
                // At most 4 blocks an SM (the entry's launch bounds; its 36 KB of static shared memory is the same for
                // any block size); more tokens than that grid holds add trips.
                warpsPerBlock = (int)Math.Clamp((warpTasks + 2L * sms - 1) / (2L * sms), 2, TeamWarpsPerBlock);
                blocks = (int)Math.Clamp((warpTasks + warpsPerBlock - 1) / warpsPerBlock, 1,
                    Math.Min((long)sms * TeamBlocksPerSm, MaxWorkspaceBlocks));
            }
            if (persistent)
            {
                // Blocks of 8 warps, no more than are resident at once (4 an SM by the launch bounds, fewer if the
                // driver's occupancy says so: the stage buffers are 16-32 KB a block), each warp taking at least
                // PairsPerWarp pairs; more tokens than that fills the resident grid, then adds trips.
                warpsPerBlock = PersistentWarpsPerBlock;
                long warpsWanted = (warpTasks + PairsPerWarp - 1) / PairsPerWarp;
                blocks = (int)Math.Clamp((warpsWanted + warpsPerBlock - 1) / warpsPerBlock, 1,
                    Math.Min((long)sms * ResidentBlocksPerSm(kernel), MaxWorkspaceBlocks));
            }
            // The workspace packs (blocks done, tokens counted) into one word per expert: usable below 2^21 tokens.
            var countWorkspace = blocks > 1 && tokens < MaxWorkspaceTokens ? workspace : null;
            if (blocks > 1 && countWorkspace is null)
                expertCounts.Slice(0, experts).Clear(s); // the kernel adds into them (one block writes them)
            kernel.Launch((CudaStream)s, blocks, 32 * warpsPerBlock, 0,
                logits, options.CorrectionBias, tokens, experts, options.TopK, options.Renormalize ? 1 : 0, grouped ? 1 : 0,
                grouped ? options.GroupCount : 1, grouped ? options.TopKGroups : 1, options.RoutedScalingFactor,
                ids, weights, expertCounts, countWorkspace);
        }
        else
        {
            RunCpu(logits, tokens, experts, options, ids.AsSpan(), weights.AsSpan(), expertCounts.AsSpan()[..experts]);
        }
    }

    /// <summary>
    /// The token-per-thread kernel (topk_routing_thread_{dtype}_{4,8,16}: a thread's slots are the smallest of 4, 8, 16
    /// that holds the experts). Few tokens: one block of whole warps covering them (its histogram is the counts, written
    /// directly); more: blocks of <see cref="ThreadBlock"/> threads, one token a thread, so that T = 8192 spreads over
    /// 64 SMs; beyond the grid cap threads stride over tokens.
    /// </summary>
    private static void RunThreadPerToken(CudaAccelerator cuda, CudaStream s, MemoryBuffer logits, int tokens, int experts,
        TopKRoutingOptions options, MemoryBuffer<int> ids, MemoryBuffer<float> weights, MemoryBuffer<int> expertCounts,
        MemoryBuffer<int>? workspace)
    {
        int slots = experts <= 4 ? 4 : experts <= 8 ? 8 : 16;
        string name = $"topk_routing_thread_{HostRows.Suffix(logits.DType)}_{slots}";
        var kernel = cuda.LoadKernel(Source.Value, name, BuildOptions(name, logits.DType, sigmoidByDivision: false));
        int sms = Math.Max(cuda.Info.MultiprocessorCount, 1);
        int threads = (int)Math.Min(ThreadBlock, ((long)tokens + 31) / 32 * 32);
        int blocks = (int)Math.Clamp(((long)tokens + threads - 1) / threads, 1,
            Math.Min((long)sms * ThreadBlocksPerSm, MaxWorkspaceBlocks));
        var countWorkspace = blocks > 1 && tokens < MaxWorkspaceTokens ? workspace : null;
        if (blocks > 1 && countWorkspace is null)
            expertCounts.Slice(0, experts).Clear(s); // the kernel adds into them (one block writes them)
        kernel.Launch(s, blocks, threads, 0,
            logits, options.CorrectionBias, tokens, experts, options.TopK, options.Renormalize ? 1 : 0, 0, 1, 1, options.RoutedScalingFactor,
            ids, weights, expertCounts, countWorkspace);
    }

    private const int ThreadBlock = 128;       // ROUTING_THREAD_BLOCK in topk_routing.cu
    private const int ThreadBlocksPerSm = 16;  // the grid cap of the token-per-thread kernel (2048 threads an SM)

    /// <summary>The most experts the token-per-thread kernel takes (its largest entry's slots).</summary>
    internal const int ThreadPerTokenMaxExperts = 16;

    /// <summary>
    /// Tokens from which softmax routing over at most <see cref="ThreadPerTokenMaxExperts"/> experts takes the
    /// token-per-thread kernel (MOE_ROUTING_THREAD_PER_TOKEN at start-up: unset, from <see cref="DefaultThreadPerTokenFrom"/>;
    /// 0, never (the strided warp-per-token kernel); N > 0, from N tokens; anything else is an error; tests and A/B
    /// benchmarks set it directly, int.MaxValue for never). Bit-identical ids, weights and counts either way.
    /// </summary>
    internal static int ThreadPerTokenFrom { get; set; } =
        ThreadPerTokenFromEnvironment(Environment.GetEnvironmentVariable("MOE_ROUTING_THREAD_PER_TOKEN"));

    /// <summary>
    /// 8192 tokens. H200, 2026-11-30 (`route8-check.sh`, E=8 k=2 f32, graph replays, two runs each): token per thread
    /// 3.25 / 3.54 / 3.86 / 3.92 us at T = 1 / 128 / 1024 / 8192 against the warp-per-token kernel's 1.91 / 2.36 / 2.52 /
    /// 5.00. A thread's serial chain (the exps, the sums, k passes) costs more than a warp's shuffles at small T; the
    /// warp kernel grows with T. Their lines cross near 5000 tokens (unmeasured); from 8192 is where the gain was seen.
    /// </summary>
    internal const int DefaultThreadPerTokenFrom = 8192;

    internal static int ThreadPerTokenFromEnvironment(string? value) =>
        value is null ? DefaultThreadPerTokenFrom
        : int.TryParse(value, out int from) && from >= 0 ? (from == 0 ? int.MaxValue : from)
        : throw new ArgumentException(
            $"MOE_ROUTING_THREAD_PER_TOKEN must be 0 (never) or a positive token count (from that many tokens), not '{value}'",
            "MOE_ROUTING_THREAD_PER_TOKEN");

    /// <summary>
    /// The token-per-thread kernel: softmax routing, at most <see cref="ThreadPerTokenMaxExperts"/> experts (a thread
    /// holds its row's logits, keys and exps in registers and makes k passes over them; more experts are the warp
    /// layouts' job: from 32 the contiguous one, where a lane holds 1-8 experts), from <see cref="ThreadPerTokenFrom"/>
    /// tokens, and not with the strided layout forced.
    /// </summary>
    internal static bool UsesThreadPath(int experts, TopKRoutingOptions options, int tokens) =>
        !ForceStridedLayout && options.Kind == RoutingKind.Softmax && experts <= ThreadPerTokenMaxExperts &&
        tokens >= ThreadPerTokenFrom && tokens > 0;

    private static readonly ConditionalWeakTable<CudaKernel, StrongBox<int>> ResidentBlocks = new();

    /// <summary>Blocks of a persistent entry resident on one SM (the driver's occupancy, asked once a kernel), 1 to 4.</summary>
    private static int ResidentBlocksPerSm(CudaKernel kernel) =>
        ResidentBlocks.GetValue(kernel, k => new StrongBox<int>(
            Math.Clamp(k.MaxActiveBlocksPerSm(32 * PersistentWarpsPerBlock), 1, PersistentBlocksPerSm))).Value;

    /// <summary>
    /// Forces the strided layout for every shape (MOE_ROUTING_LAYOUT=strided at start-up; tests and A/B benchmarks set
    /// it directly). Both layouts give the same ids and counts, and the same weight bits except softmax without
    /// renormalising, whose denominator each layout sums in its own order (1-2 ulp apart).
    /// </summary>
    internal static bool ForceStridedLayout { get; set; } =
        string.Equals(Environment.GetEnvironmentVariable("MOE_ROUTING_LAYOUT"), "strided", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Keeps the contiguous path at one token per warp for every token count (MOE_ROUTING_TOKENS_PER_WARP=1 at start-up;
    /// tests and A/B benchmarks set it directly). Both give bit-identical ids, weights and counts.
    /// </summary>
    internal static bool ForceOneTokenPerWarp { get; set; } =
        Environment.GetEnvironmentVariable("MOE_ROUTING_TOKENS_PER_WARP") == "1";

    /// <summary>
    /// Builds the contiguous path's grouped scores with the plain division 1 / (1 + exp(-x)) (a branch per expert)
    /// instead of the branch-free reciprocal (MOE_ROUTING_SIGMOID=division at start-up; tests and A/B benchmarks set it
    /// directly). Both give bit-identical ids, weights and counts.
    /// </summary>
    internal static bool SigmoidByDivision { get; set; } =
        string.Equals(Environment.GetEnvironmentVariable("MOE_ROUTING_SIGMOID"), "division", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// The build of topk_routing.cu that holds <paramref name="entry"/>: one logits dtype's entries of one group (its
    /// ROUTING_ONE_DTYPE and ROUTING_ONE_GROUP note), so a first use compiles the 1-3 entries a call can take, not the
    /// source's 55; with the division sigmoid when asked.
    /// </summary>
    internal static IReadOnlyList<string> BuildOptions(string entry, DType logits, bool sigmoidByDivision) =>
        DTypeBuilds.Group("ROUTING", logits, GroupOf(entry), sigmoidByDivision ? "-DROUTING_SIGMOID_DIVISION" : null);

    /// <summary>
    /// The group of a topk_routing.cu entry (topk_routing_[contiguous_[x2_|x2p_]|teams_|thread_]{dtype}[_{n}]): thread,
    /// teams, persistent (x2p), or lanes{n} for the warp entries of n expert slots a lane.
    /// </summary>
    internal static string GroupOf(string entry) =>
        entry.StartsWith("topk_routing_thread_", StringComparison.Ordinal) ? "thread"
        : entry.StartsWith("topk_routing_teams_", StringComparison.Ordinal) ? "teams"
        : entry.StartsWith("topk_routing_contiguous_x2p_", StringComparison.Ordinal) ? "persistent"
        : entry.StartsWith("topk_routing_", StringComparison.Ordinal) && int.TryParse(entry[(entry.LastIndexOf('_') + 1)..], out int perLane)
            ? $"lanes{perLane}"
            : throw new ArgumentException($"'{entry}' is not an entry of topk_routing.cu", nameof(entry));

    /// <summary>
    /// Tokens from which the persistent two-token path is used (unset or MOE_ROUTING_PERSISTENT=0 at start-up: never; 1:
    /// from <see cref="DefaultPersistentFrom"/>; tests and A/B benchmarks set it directly, 0 for every token count).
    /// Bit-identical ids, weights and counts either way.
    /// </summary>
    internal static int PersistentFrom { get; set; } =
        Environment.GetEnvironmentVariable("MOE_ROUTING_PERSISTENT") == "1" ? DefaultPersistentFrom : int.MaxValue;

    /// <summary>
    /// The least token pairs a warp of the persistent path loops over (MOE_ROUTING_PAIRS_PER_WARP at start-up, default 2;
    /// the grid is also capped at the resident warps, so more tokens mean more trips). 1 gives the one-pass grid of
    /// the plain two-token path (staged through shared memory, no overlap); more trips overlap more loads, on fewer warps.
    /// </summary>
    internal static int PairsPerWarp { get; set; } =
        int.TryParse(Environment.GetEnvironmentVariable("MOE_ROUTING_PAIRS_PER_WARP"), out int pairs) && pairs >= 1 ? pairs : 2;

    /// <summary>
    /// The persistent path (topk_routing_contiguous_x2p_*): contiguous layout, a lane's share of a row whole 16-byte
    /// chunks (E = 128 or 256 in F32, 256 in BF16/F16; the entries that exist), from <see cref="PersistentFrom"/> tokens
    /// and not forced to one token per warp.
    /// </summary>
    internal static bool UsesPersistentPath(bool contiguous, int perLane, int elementSize, int tokens) =>
        contiguous && !ForceOneTokenPerWarp && tokens >= PersistentFrom && tokens > 0 &&
        perLane * elementSize % 16 == 0 && perLane * elementSize <= 32;

    /// <summary>
    /// Tokens from which the token-team kernel routes the shapes it takes (MOE_ROUTING_TEAMS at start-up: unset,
    /// <see cref="DefaultTeamsFrom"/>; 0, never; N > 0, from N tokens; tests and A/B benchmarks set it directly,
    /// int.MaxValue for never). Bit-identical ids, weights and counts either way.
    /// </summary>
    internal static int TeamsFrom { get; set; } = TeamsFromEnvironment(Environment.GetEnvironmentVariable("MOE_ROUTING_TEAMS"));

    internal static int TeamsFromEnvironment(string? value) =>
        value is null ? DefaultTeamsFrom : int.TryParse(value, out int from) && from > 0 ? from : int.MaxValue;

    /// <summary>
    /// The token-team kernel (topk_routing_teams_*): DeepSeek-V3's shape on the contiguous layout (experts 256 in 8
    /// groups, k at most 8, TopKGroups at most 4 so that at most 128 candidates, 2 * TopKGroups at least k so that the kept groups'
    /// second keys bound the choices, a 16-byte aligned bias), from <see cref="TeamsFrom"/> tokens and not forced to
    /// one token per warp.
    /// </summary>
    internal static bool UsesTeamPath(bool contiguous, int experts, TopKRoutingOptions options, int tokens) =>
        contiguous && !ForceOneTokenPerWarp && tokens >= TeamsFrom && tokens > 0 &&
        options.Kind == RoutingKind.DeepSeekGrouped && experts == 256 && options.GroupCount == 8 &&
        options.TopK <= 8 && options.TopKGroups <= 4 && 2 * options.TopKGroups >= options.TopK &&
        (options.CorrectionBias is null || options.CorrectionBias.Pointer % 16 == 0);

    /// <summary>Tokens a warp routes at once: 2 on the contiguous path from <see cref="TwoTokensPerWarpFrom"/> tokens, else 1.</summary>
    internal static int TokensPerWarp(bool contiguous, int tokens) =>
        contiguous && !ForceOneTokenPerWarp && tokens >= TwoTokensPerWarpFrom ? 2 : 1;

    /// <summary>
    /// The contiguous (fast) layout of topk_routing.cu: lane l holds experts [l * P, (l + 1) * P), read as 16-byte
    /// vectors, so it needs experts == 32 * P (32, 64, 128, 256; 512 would spill registers), 16-byte aligned logits,
    /// and for grouped routing a power-of-two group count (a group is then whole adjacent lanes). Other shapes (E=8,
    /// E=96, E=512, 3 or 6 groups, a logits view at an odd offset) take the strided path.
    /// </summary>
    internal static bool UsesContiguousLayout(MemoryBuffer logits, int experts, int perLane, TopKRoutingOptions options) =>
        !ForceStridedLayout && experts == 32 * perLane && perLane <= 8 && logits.Pointer % 16 == 0 &&
        (options.Kind != RoutingKind.DeepSeekGrouped || int.IsPow2(options.GroupCount));

    internal static void Validate(MemoryBuffer logits, int tokens, int experts, TopKRoutingOptions options,
        MemoryBuffer<int> ids, MemoryBuffer<float> weights, MemoryBuffer<int> expertCounts)
    {
        var accelerator = logits.Accelerator;
        logits.ThrowIfDisposed();
        HostRows.CheckDataType(logits, nameof(logits));
        if (tokens < 0)
            throw new ArgumentOutOfRangeException(nameof(tokens), tokens, "tokens must be >= 0");
        if (experts < 1 || experts > MaxExperts)
            throw new ArgumentOutOfRangeException(nameof(experts), experts, $"experts must be in [1, {MaxExperts}]");
        int k = options.TopK;
        if (k < 1 || k > MaxTopK || k > experts)
            throw new ArgumentOutOfRangeException(nameof(options), k, $"TopK must be in [1, min({MaxTopK}, experts = {experts})]");
        if (!float.IsFinite(options.RoutedScalingFactor))
            throw new ArgumentOutOfRangeException(nameof(options), options.RoutedScalingFactor, "RoutedScalingFactor must be finite");
        HostRows.Check(logits, accelerator, (long)tokens * experts, nameof(logits));
        HostRows.Check(ids, accelerator, (long)tokens * k, nameof(ids));
        HostRows.Check(weights, accelerator, (long)tokens * k, nameof(weights));
        HostRows.Check(expertCounts, accelerator, experts, nameof(expertCounts));
        if (options.Kind == RoutingKind.Softmax)
        {
            if (options.CorrectionBias is not null)
                throw new ArgumentException("CorrectionBias applies to DeepSeekGrouped routing only", nameof(options));
            if (options.GroupCount != 1 || options.TopKGroups != 1)
                throw new ArgumentException($"GroupCount/TopKGroups ({options.GroupCount}/{options.TopKGroups}) apply to DeepSeekGrouped routing only; leave them 1", nameof(options));
            return;
        }
        if (options.Kind != RoutingKind.DeepSeekGrouped)
            throw new ArgumentOutOfRangeException(nameof(options), options.Kind, "unknown routing kind");
        int groups = options.GroupCount;
        if (groups < 1 || groups > MaxGroups || experts % groups != 0)
            throw new ArgumentOutOfRangeException(nameof(options), groups, $"GroupCount must be in [1, {MaxGroups}] and divide experts ({experts})");
        int groupSize = experts / groups;
        if (groupSize < 2)
            throw new ArgumentOutOfRangeException(nameof(options), groups, $"each group needs at least 2 experts (its score is the sum of its top 2); experts {experts} / GroupCount {groups} = {groupSize}");
        if (options.TopKGroups < 1 || options.TopKGroups > groups)
            throw new ArgumentOutOfRangeException(nameof(options), options.TopKGroups, $"TopKGroups must be in [1, GroupCount = {groups}]");
        if ((long)options.TopKGroups * groupSize < k)
            throw new ArgumentOutOfRangeException(nameof(options), options.TopKGroups, $"TopKGroups {options.TopKGroups} * group size {groupSize} < TopK {k}: not enough experts to choose from");
        if (options.CorrectionBias is { } bias)
            HostRows.Check(bias, accelerator, experts, "options.CorrectionBias");
    }
}
