using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;
using MoeRuntime.Kernels.GroupedGemm;

namespace MoeRuntime.Kernels.Permute;

/// <summary>
/// Permute: sorts the (token, slot) pairs of a routing by expert and gathers hidden rows into that order,
/// so each expert's rows are one contiguous segment for the grouped GEMM.
/// <para>
/// Outputs: expertCounts [E] (slots per expert), expertOffsets [E + 1] (segment starts; each segment padded
/// to a multiple of blockSize; expertOffsets[E] = rows in use), rowOfSlot [T*k] (row of slot t*k+j, -1 if
/// its id is outside [0, E)), tokenOfRow [RowCapacity] (-1 for padding and unused rows), and optionally
/// gathered [RowCapacity, H] (row r = hidden[tokenOfRow[r]], zeros in padding rows; rows at or past
/// expertOffsets[E] are not written). Stable: within an expert, rows follow slot order (t*k + j).
/// Ids outside [0, E) are dropped (e.g. -1 for "expert on another rank"): no row, rowOfSlot -1.
/// </para>
/// Example: T = 3, k = 2, E = 3, ids = [[2, 0], [0, 1], [2, 0]], blockSize 1 ->
/// expertCounts [3, 1, 2], expertOffsets [0, 3, 4, 6], rows in expert order are slots 1, 2, 5 | 3 | 0, 4,
/// so rowOfSlot [4, 0, 1, 3, 5, 2] and tokenOfRow [0, 1, 2, 1, 0, 2]. With blockSize 4:
/// expertOffsets [0, 4, 8, 12], tokenOfRow [0, 1, 2, -1, 1, -1, -1, -1, 0, 2, -1, -1, ...].
/// </summary>
public static partial class Permute
{
    public const int MaxExperts = 512;
    private const int Chunk = 512;          // PERMUTE_CHUNK in permute.cu
    private const int WarpsPerBlock = 4;    // PERMUTE_WARPS
    private const int GatherThreads = 128;  // GATHER_THREADS

    private static readonly Lazy<KernelSource> Source = new(() => KernelSource.FromResource(typeof(Permute).Assembly, "permute.cu"));

    /// <summary>Rows the padded layout may need: T*k + E*(blockSize - 1) (every segment padded by at most blockSize - 1).</summary>
    public static long RowCapacity(int tokens, int topK, int experts, int blockSize = 1) =>
        (long)tokens * topK + (long)experts * (blockSize - 1);

    /// <summary>I32 elements of the CUDA workspace: ceil(T*k / 512) * E (per-chunk counts; fully written by each
    /// run, so never needs zeroing). Unused on the CPU.</summary>
    public static long WorkspaceElements(int tokens, int topK, int experts) => ChunkCount((long)tokens * topK) * experts;

    /// <summary>
    /// Builds the expert order of <paramref name="ids"/> [tokens, topK] and, when <paramref name="hidden"/>
    /// [tokens, hiddenSize] is given, gathers its rows into <paramref name="gathered"/> (same dtype).
    /// Without a <paramref name="workspace"/> (<see cref="WorkspaceElements"/>) the CUDA path allocates one
    /// and waits for the stream before freeing it; pass one to stay asynchronous (and graph-capturable).
    /// With a <paramref name="tileMap"/> it also writes the m-tile map of the offsets at <paramref name="tileRows"/> rows a
    /// tile (<see cref="TileMapElements"/>; the grouped GEMV reads its tile from it instead of searching the offsets).
    /// </summary>
    public static void Run(MemoryBuffer<int> ids, int tokens, int topK, int experts, int blockSize,
        MemoryBuffer<int> expertCounts, MemoryBuffer<int> expertOffsets, MemoryBuffer<int> rowOfSlot, MemoryBuffer<int> tokenOfRow,
        MemoryBuffer? hidden = null, int hiddenSize = 0, MemoryBuffer? gathered = null,
        MemoryBuffer<int>? workspace = null, AcceleratorStream? stream = null,
        MemoryBuffer<int>? tileMap = null, int tileRows = DefaultTileRows)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var accelerator = ids.Accelerator;
        ids.ThrowIfDisposed();
        if (tokens < 0)
            throw new ArgumentOutOfRangeException(nameof(tokens), tokens, "tokens must be >= 0");
        if (experts < 1 || experts > MaxExperts)
            throw new ArgumentOutOfRangeException(nameof(experts), experts, $"experts must be in [1, {MaxExperts}]");
        if (topK < 1 || topK > experts)
            throw new ArgumentOutOfRangeException(nameof(topK), topK, $"topK must be in [1, experts = {experts}]");
        if (blockSize < 1)
            throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "blockSize must be >= 1 (1: no padding)");
        long slots = (long)tokens * topK;
        long capacity = RowCapacity(tokens, topK, experts, blockSize);
        if (capacity > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(tokens), $"{capacity} rows exceed the I32 row index");
        HostRows.Check(ids, accelerator, slots, nameof(ids));
        HostRows.Check(expertCounts, accelerator, experts, nameof(expertCounts));
        HostRows.Check(expertOffsets, accelerator, experts + 1, nameof(expertOffsets));
        HostRows.Check(rowOfSlot, accelerator, slots, nameof(rowOfSlot));
        HostRows.Check(tokenOfRow, accelerator, capacity, nameof(tokenOfRow));
        if ((hidden is null) != (gathered is null))
            throw new ArgumentException("hidden and gathered go together: pass both or neither", hidden is null ? nameof(hidden) : nameof(gathered));
        if (hidden is not null && gathered is not null)
        {
            if (hiddenSize < 1)
                throw new ArgumentOutOfRangeException(nameof(hiddenSize), hiddenSize, "hiddenSize must be >= 1");
            HostRows.Check(hidden, accelerator, (long)tokens * hiddenSize, nameof(hidden));
            HostRows.CheckDataType(hidden, nameof(hidden));
            HostRows.Check(gathered, accelerator, capacity * hiddenSize, nameof(gathered));
            HostRows.CheckDType(gathered, hidden.DType, nameof(gathered));
        }
        long chunks = ChunkCount(slots);
        if (workspace is not null)
            HostRows.Check(workspace, accelerator, chunks * experts, nameof(workspace));
        int mapTiles = tileMap is null ? 0 : CheckTileMap(tileMap, accelerator, (int)capacity, experts, tileRows);
        var s = stream ?? accelerator.DefaultStream;
        if (!ReferenceEquals(s.Accelerator, accelerator))
            throw new ArgumentException($"stream of {s.Accelerator.Name} used with ids on {accelerator.Name}", nameof(stream));

        if (accelerator is not CudaAccelerator cuda)
        {
            RunCpu(ids.AsSpan()[..(int)slots], topK, experts, blockSize, (int)capacity, expertCounts.AsSpan(), expertOffsets.AsSpan(),
                rowOfSlot.AsSpan(), tokenOfRow.AsSpan());
            if (tileMap is not null)
                WriteTileMapCpu(expertOffsets.AsSpan()[..(experts + 1)], tileRows, tileMap.AsSpan()[..(3 * mapTiles)]);
            if (hidden is not null && gathered is not null)
                GatherCpu(hidden, hiddenSize, tokenOfRow, expertOffsets.AsSpan()[experts], gathered);
            return;
        }

        if (UsesOneKernel(slots, capacity))
        {
            RunOneKernel(cuda, (CudaStream)s, ids, slots, topK, experts, blockSize, expertCounts, expertOffsets, rowOfSlot, tokenOfRow,
                (int)capacity, hidden, hiddenSize, gathered, tileMap, tileRows, mapTiles);
            return;
        }

        var ownedWorkspace = workspace is null ? accelerator.Allocate<int>(Math.Max(1, chunks * experts)) : null;
        try
        {
            var chunkCounts = workspace ?? ownedWorkspace!;
            var cudaStream = (CudaStream)s;
            int chunkBlocks = (int)((chunks + WarpsPerBlock - 1) / WarpsPerBlock);
            cuda.LoadKernel(Source.Value, "permute_count_chunks", ChainOptions).Launch(cudaStream, chunkBlocks, 32 * WarpsPerBlock, 0,
                ids, slots, experts, (int)chunks, chunkCounts);
            if (UsesFusedPlacement(chunks, experts))
            {
                cuda.LoadKernel(Source.Value, "permute_offsets_scatter", ChainOptions).Launch(cudaStream, Math.Max(1, chunkBlocks), 32 * WarpsPerBlock, 0,
                    ids, slots, topK, experts, (int)chunks, blockSize, chunkCounts, expertCounts, expertOffsets, rowOfSlot, tokenOfRow,
                    (int)capacity);
            }
            else
            {
                cuda.LoadKernel(Source.Value, "permute_offsets", ChainOptions).Launch(cudaStream, 1, 512, 0,
                    chunkCounts, (int)chunks, experts, blockSize, expertCounts, expertOffsets, tokenOfRow, (int)capacity);
                cuda.LoadKernel(Source.Value, "permute_scatter", ChainOptions).Launch(cudaStream, chunkBlocks, 32 * WarpsPerBlock, 0,
                    ids, slots, topK, experts, (int)chunks, chunkCounts, expertOffsets, rowOfSlot, tokenOfRow);
            }
            if (tileMap is not null)
                cuda.LoadKernel(Source.Value, "permute_tile_map", ChainOptions).Launch(cudaStream, 1, 32 * WarpsPerBlock, 0,
                    expertOffsets, experts, tileRows, tileMap, mapTiles);
            if (hidden is not null && gathered is not null && capacity > 0)
            {
                long rowBytes = (long)hiddenSize * hidden.ElementSize;
                int unit = WidestUnit(rowBytes, hidden.Pointer, gathered.Pointer);
                string entry = unit switch { 16 => "gather_rows_u128", 4 => "gather_rows_u32", _ => "gather_rows_u16" };
                cuda.LoadKernel(Source.Value, entry, ChainOptions).Launch(cudaStream, (int)capacity, GatherThreads, 0,
                    hidden, tokenOfRow, expertOffsets, experts, rowBytes / unit, gathered);
            }
            if (ownedWorkspace is not null)
                s.Synchronize();
        }
        finally
        {
            ownedWorkspace?.Dispose();
        }
    }

    private static long ChunkCount(long slots) => (slots + Chunk - 1) / Chunk;

    // permute_one_kernel_u*: every block orders the one chunk itself, block 0 writes the indices, block b gathers rows b,
    // b + grid, ...; one block when nothing is gathered.
    private static void RunOneKernel(CudaAccelerator cuda, CudaStream stream, MemoryBuffer<int> ids, long slots, int topK, int experts, int blockSize,
        MemoryBuffer<int> expertCounts, MemoryBuffer<int> expertOffsets, MemoryBuffer<int> rowOfSlot, MemoryBuffer<int> tokenOfRow, int capacity,
        MemoryBuffer? hidden, int hiddenSize, MemoryBuffer? gathered, MemoryBuffer<int>? tileMap, int tileRows, int mapTiles)
    {
        bool gather = hidden is not null && gathered is not null && capacity > 0;
        long rowBytes = gather ? (long)hiddenSize * hidden!.ElementSize : 0;
        int unit = gather ? WidestUnit(rowBytes, hidden!.Pointer, gathered!.Pointer) : 16;
        string entry = unit switch { 16 => "permute_one_kernel_u128", 4 => "permute_one_kernel_u32", _ => "permute_one_kernel_u16" };
        cuda.LoadKernel(Source.Value, entry, BuildOptions(entry, MatchInstruction)).Launch(stream, gather ? capacity : 1, GatherThreads, 0,
            ids, slots, topK, experts, blockSize, expertCounts, expertOffsets, rowOfSlot, tokenOfRow, capacity,
            gather ? hidden : null, gather ? rowBytes / unit : 0L, gather ? gathered : null, tileMap, tileRows, mapTiles);
    }

    /// <summary>Rows of the one-kernel path's shared token table (PERMUTE_ONE_KERNEL_ROWS in permute.cu).</summary>
    internal const int OneKernelMaxRows = 2048;

    /// <summary>
    /// Keeps the one-kernel path off (MOE_PERMUTE_PATH=two at start-up, or three; tests and A/B benchmarks set it directly):
    /// chunk counts, offsets and scatter, gather as separate kernels at every size.
    /// </summary>
    internal static bool ForceSeparateKernels { get; set; } =
        Environment.GetEnvironmentVariable("MOE_PERMUTE_PATH") is { } path
        && (path.Equals("two", StringComparison.OrdinalIgnoreCase) || path.Equals("three", StringComparison.OrdinalIgnoreCase));

    /// <summary>
    /// Whether the whole permute runs as one kernel (permute_one_kernel): one chunk of slots (at most 512: decode, e.g.
    /// T &lt;= 64 at k = 8) and at most <see cref="OneKernelMaxRows"/> rows, unless a path switch keeps it off.
    /// </summary>
    internal static bool UsesOneKernel(long slots, long capacity) =>
        !ForceSeparateKernels && !ForceThreeKernels && ChunkCount(slots) <= 1 && capacity <= OneKernelMaxRows;

    /// <summary>
    /// Chunk counts a thread of permute_offsets_scatter may read: every block of it reads all chunks x E counts, a
    /// thread ceil(E / 128) experts over all chunks, so past this the separate one-block offsets kernel (one launch
    /// more) is cheaper. 128: e.g. T=8192 k=2 (32 chunks) up to E=512, T=8192 k=8 (128 chunks) up to E=128.
    /// </summary>
    internal const int FusedMaxCountsPerThread = 128;

    /// <summary>Forces the three-kernel index path for every shape (MOE_PERMUTE_PATH=three at start-up; tests and A/B
    /// benchmarks set it directly). Both paths give the same outputs.</summary>
    internal static bool ForceThreeKernels { get; set; } =
        string.Equals(Environment.GetEnvironmentVariable("MOE_PERMUTE_PATH"), "three", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Builds the scatter's same-expert lane masks with the match.any instruction (__match_any_sync) instead of one
    /// ballot per label bit (MOE_PERMUTE_MATCH=instruction at start-up; tests and A/B benchmarks set it directly).
    /// Both give the same masks, so the same outputs.
    /// </summary>
    internal static bool MatchInstruction { get; set; } =
        string.Equals(Environment.GetEnvironmentVariable("MOE_PERMUTE_MATCH"), "instruction", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// The build of permute.cu that holds <paramref name="entry"/> (its PERMUTE_ONE_GROUP note): a one-kernel entry alone
    /// (permute_one_kernel_u128 -> one_u128), or the separate kernels and gathers (chain); with the match.any scatter when asked.
    /// </summary>
    internal static IReadOnlyList<string> BuildOptions(string entry, bool matchInstruction) =>
        DTypeBuilds.Group("PERMUTE", null,
            entry.StartsWith("permute_one_kernel_", StringComparison.Ordinal) ? "one_" + entry["permute_one_kernel_".Length..] : "chain",
            matchInstruction ? "-DPERMUTE_MATCH_INSTRUCTION" : null);

    /// <summary>The build of the separate kernels and their gathers (every launch but the one-kernel path's).</summary>
    private static IReadOnlyList<string> ChainOptions => BuildOptions("permute_count_chunks", MatchInstruction);

    /// <summary>
    /// Kernel launches one CUDA <see cref="Run"/> issues for this shape (what the host pays per call; the scale model's host
    /// enqueue term counts them): one for the one-kernel path; else the chunk counts, then offsets and scatter as one kernel
    /// or two, then the gather of the rows when <paramref name="gather"/> and any row exists (empty grids are skipped).
    /// </summary>
    /// With <paramref name="tileMap"/>, the separate-kernel paths launch the map's kernel too (the one-kernel path writes it itself).
    public static int Launches(int tokens, int topK, int experts, bool gather, int blockSize = 1, bool tileMap = false)
    {
        long slots = (long)tokens * topK;
        if (UsesOneKernel(slots, RowCapacity(tokens, topK, experts, blockSize)))
            return 1;
        int map = tileMap ? 1 : 0;
        if (slots <= 0)
            return (gather && RowCapacity(tokens, topK, experts, blockSize) > 0 ? 2 : 1) + map;
        long chunks = ChunkCount(slots);
        return 1 + (UsesFusedPlacement(chunks, experts) ? 1 : 2) + map + (gather && RowCapacity(tokens, topK, experts, blockSize) > 0 ? 1 : 0);
    }

    /// <summary>Whether the offsets and the scatter run as one kernel (permute_offsets_scatter) for this shape.</summary>
    internal static bool UsesFusedPlacement(long chunks, int experts) =>
        !ForceThreeKernels && chunks * ((experts + WarpsPerBlock * 32 - 1) / (WarpsPerBlock * 32)) <= FusedMaxCountsPerThread;

    /// <summary>The widest copy unit (16, 4 or 2 bytes) that divides the row size and both base addresses.</summary>
    internal static int WidestUnit(long rowBytes, params ReadOnlySpan<nint> pointers)
    {
        foreach (int unit in new[] { 16, 4 })
        {
            bool fits = rowBytes % unit == 0;
            foreach (var p in pointers)
                fits &= p % unit == 0;
            if (fits)
                return unit;
        }
        return 2;
    }
}
