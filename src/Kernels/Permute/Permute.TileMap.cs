using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;

namespace MoeRuntime.Kernels.Permute;

/// <summary>
/// The m-tile map Permute writes on request: the work list of the grouped GEMV, so its blocks read their tile with one
/// load instead of searching the offsets (expert_tiles.cuh's find_expert_tile) at every block's start.
/// <para>
/// Expert e's rows [expertOffsets[e], expertOffsets[e + 1]) (padded segments included) are cut into
/// ceil(rows_e / tileRows) m-tiles, the last one partial, numbered in expert order, as find_expert_tile numbers them.
/// Tile i is the triple (expert, rowBegin, rowEnd) at [3i, 3i + 3); entries past the last tile, up to the map's length,
/// are (-1, 0, 0).
/// </para>
/// Example: tileRows 4, offsets [0, 5, 5, 6] (E = 3: 5 rows, none, 1) -> tiles (0, 0, 4), (0, 4, 5), (2, 5, 6), then
/// (-1, 0, 0) up to the map's length (3 x MTilesBound(6, 3, 4) = 3 x 5 entries: two empty tiles).
/// </summary>
public static partial class Permute
{
    /// <summary>Rows a tile of the map, by default: the 4-row decode GEMV's m-tile (GroupedGemmOptions.TileMap).</summary>
    public const int DefaultTileRows = 4;

    /// <summary>I32 elements of the map for a GEMM of <paramref name="rows"/> rows: 3 x GroupedGemmLaunch.MTilesBound.</summary>
    public static long TileMapElements(int rows, int experts, int tileRows = DefaultTileRows) =>
        3L * GroupedGemmLaunch.MTilesBound(rows, experts, tileRows);

    /// <summary>Checks the map against this call's rows; returns its tiles (length / 3).</summary>
    private static int CheckTileMap(MemoryBuffer<int> tileMap, Accelerator accelerator, int rows, int experts, int tileRows)
    {
        if (tileRows < 1)
            throw new ArgumentOutOfRangeException(nameof(tileRows), tileRows, "tileRows must be >= 1");
        HostRows.Check(tileMap, accelerator, TileMapElements(rows, experts, tileRows), nameof(tileMap));
        if (tileMap.Length % 3 != 0 || tileMap.Length / 3 > int.MaxValue)
            throw new ArgumentException($"tileMap ({tileMap.Describe()}) holds {tileMap.Length} elements; a map is whole (expert, rowBegin, rowEnd) triples, 3 x tiles", nameof(tileMap));
        return (int)(tileMap.Length / 3);
    }

    /// <summary>The CPU twin of the map (and the reference the CUDA paths are tested against): a walk over the experts.</summary>
    internal static void WriteTileMapCpu(ReadOnlySpan<int> expertOffsets, int tileRows, Span<int> tileMap)
    {
        int experts = expertOffsets.Length - 1, tile = 0, tiles = tileMap.Length / 3;
        for (int e = 0; e < experts; e++)
            for (int begin = expertOffsets[e]; begin < expertOffsets[e + 1] && tile < tiles; begin += tileRows, tile++)
            {
                tileMap[3 * tile] = e;
                tileMap[3 * tile + 1] = begin;
                tileMap[3 * tile + 2] = Math.Min(begin + tileRows, expertOffsets[e + 1]);
            }
        for (; tile < tiles; tile++)
        {
            tileMap[3 * tile] = -1;
            tileMap[3 * tile + 1] = 0;
            tileMap[3 * tile + 2] = 0;
        }
    }
}
