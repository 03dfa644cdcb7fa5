// permute.cu: expert-sorted order of (token, slot) pairs and the gather of hidden rows into it.
//
//   ids:           [slots = tokens * topK] I32 expert of each (token, slot); ids outside [0, experts)
//                  are dropped (rowOfSlot = -1), e.g. -1 for "expert not on this rank"
//   chunkCounts:   [chunks, experts] I32 workspace, chunks = ceil(slots / PERMUTE_CHUNK)
//   expertCounts:  [experts] I32 slots routed to each expert
//   expertOffsets: [experts + 1] I32 first row of each expert's segment; segments padded to a
//                  multiple of blockSize; expertOffsets[experts] = rows in use
//   rowOfSlot:     [slots] I32 row of each (token, slot), stable: token order kept within an expert
//   tokenOfRow:    [rowCapacity] I32 token of each row; -1 for padding rows and rows past the end
//   gathered:      [rowCapacity, rowBytes] rows of hidden in expert order (zeros in padding rows);
//                  rows at or past expertOffsets[experts] are not written
//
// Two or three small kernels then the gather, all deterministic (no dependence on atomic order). They are
// latency-bound (a few thousand slots per warp or thread at most), so each issues its loads together: a chunk's ids
// up front, the offsets scan PERMUTE_SCAN_BATCH chunk counts at a time.
//   permute_count_chunks  grid ceil(chunks / PERMUTE_WARPS), block 32 * PERMUTE_WARPS: per-chunk counts
//   then, for few chunks (Permute.cs picks):
//   permute_offsets_scatter  grid max(1, ceil(chunks / PERMUTE_WARPS)), same block: the two below in one kernel
//   or else:
//   permute_offsets       grid 1, block 512: per-chunk bases (in place), counts, padded offsets, -1 rows
//   permute_scatter       as permute_count_chunks: rowOfSlot and tokenOfRow
//   gather_rows_u{128,32,16}  grid rowCapacity, block GATHER_THREADS: byte copy of rows in units of
//                         16, 4 or 2 bytes (the caller picks the widest unit dividing the row and the
//                         base addresses)
//   or, for one chunk of slots and at most PERMUTE_ONE_KERNEL_ROWS rows (decode), all of it in one kernel:
//   permute_one_kernel_u{128,32,16}  grid max(1, rowCapacity) (1 without a gather), block 32 * PERMUTE_WARPS
// On request, the m-tile map of the offsets (tileMap: [mapTiles, 3] I32 (expert, rowBegin, rowEnd), Permute.TileMap.cs):
//   block 0 of permute_one_kernel writes it; on the separate-kernel paths permute_tile_map (grid 1, same block) after
//   the offsets.
// The scatter's same-expert lane masks come from ten ballots (lanes_with_same_expert); -DPERMUTE_MATCH_INSTRUCTION
// (MOE_PERMUTE_MATCH=instruction) builds __match_any_sync instead, for A/B.
// Constraints (checked by Permute.cs): experts <= 512, rowCapacity < 2^31.
// dependent-launch: every entry calls moe_wait_prior_grid() first (moe_common.cuh), so it may overlap the kernel before it.
#include "moe_common.cuh"

#define PERMUTE_WARPS 4
#define PERMUTE_CHUNK 512
#define PERMUTE_ROUNDS (PERMUTE_CHUNK / 32) // slots per lane in a chunk
#define PERMUTE_SCAN_BATCH 32              // chunk counts an offsets thread has in flight
#define PERMUTE_MAX_EXPERTS 512
#define GATHER_THREADS 128
#define GATHER_UNROLL 4
#define PERMUTE_ONE_KERNEL_ROWS 2048 // rows of the one-kernel path's shared token table (Permute.OneKernelMaxRows)

// One group of entries a build: the host defines PERMUTE_ONE_GROUP and PERMUTE_GROUP_<chain|one_u128|one_u32|one_u16>
// (the separate kernels and their gathers, or one width's one-kernel entry), so a first use compiles what the call
// launches. Neither: every entry.
#if !defined(PERMUTE_ONE_GROUP) || defined(PERMUTE_GROUP_chain)
#define PERMUTE_BUILDS_CHAIN 1
#else
#define PERMUTE_BUILDS_CHAIN 0
#endif

__device__ __forceinline__ int valid_expert(const int* ids, long long slot, long long slots, int experts)
{
    if (slot >= slots)
        return -1;
    int e = ids[slot];
    return (e >= 0 && e < experts) ? e : -1;
}

// Inclusive prefix sum of `value` over the lanes of a (full) warp: lane l gets the sum of lanes 0..l.
__device__ __forceinline__ int warp_inclusive_sum(int value, int lane)
{
#pragma unroll
    for (int offset = 1; offset < 32; offset <<= 1)
    {
        const int lower = __shfl_up_sync(0xffffffffu, value, offset);
        if (lane >= offset)
            value += lower;
    }
    return value;
}

// The experts of a warp's chunk, round r's slot (chunk * PERMUTE_CHUNK + r * 32 + lane) in expertOf[r]: all the loads
// issued before any is used, so a chunk costs one memory latency rather than one per round.
__device__ __forceinline__ void load_chunk(const int* __restrict__ ids, long long slots, int experts, int chunk, int lane,
                                           int (&expertOf)[PERMUTE_ROUNDS])
{
#pragma unroll
    for (int round = 0; round < PERMUTE_ROUNDS; round++)
        expertOf[round] = valid_expert(ids, (long long)chunk * PERMUTE_CHUNK + round * 32 + lane, slots, experts);
}

// One warp per chunk of PERMUTE_CHUNK consecutive slots: counts per expert, by shared-memory atomics (a count is a
// sum of ones, the same in any order; only the scatter below needs the slot order, and keeps it).
#if PERMUTE_BUILDS_CHAIN
extern "C" __global__ void __launch_bounds__(32 * PERMUTE_WARPS) permute_count_chunks(
    const int* __restrict__ ids, long long slots, int experts, int chunks, int* __restrict__ chunkCounts)
{
    moe_wait_prior_grid();
    __shared__ int counters[PERMUTE_WARPS][PERMUTE_MAX_EXPERTS];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int chunk = blockIdx.x * PERMUTE_WARPS + warp;
    if (chunk >= chunks)
        return;
    int* counter = counters[warp];
    int expertOf[PERMUTE_ROUNDS];
    load_chunk(ids, slots, experts, chunk, lane, expertOf);
    for (int e = lane; e < experts; e += 32)
        counter[e] = 0;
    __syncwarp();
#pragma unroll
    for (int round = 0; round < PERMUTE_ROUNDS; round++)
        if (expertOf[round] >= 0)
            atomicAdd(&counter[expertOf[round]], 1);
    __syncwarp();
    for (int e = lane; e < experts; e += 32)
        chunkCounts[(long long)chunk * experts + e] = counter[e];
}
#endif

// One block of 512 threads, thread e for expert e.
#if PERMUTE_BUILDS_CHAIN
extern "C" __global__ void __launch_bounds__(512) permute_offsets(
    int* __restrict__ chunkCounts, int chunks, int experts, int blockSize,
    int* __restrict__ expertCounts, int* __restrict__ expertOffsets, int* __restrict__ tokenOfRow, int rowCapacity)
{
    moe_wait_prior_grid();
    __shared__ int warpTotals[16];
    __shared__ int totalRows;
    const int e = threadIdx.x, lane = threadIdx.x % 32, warp = threadIdx.x / 32;

    // Chunk bases within the expert's segment: exclusive scan over chunks, in place, PERMUTE_SCAN_BATCH chunks at a
    // time (their loads all issued before the first store, so they overlap instead of queueing one by one).
    int count = 0;
    if (e < experts)
    {
        for (int c0 = 0; c0 < chunks; c0 += PERMUTE_SCAN_BATCH)
        {
            int v[PERMUTE_SCAN_BATCH];
#pragma unroll
            for (int i = 0; i < PERMUTE_SCAN_BATCH; i++)
                v[i] = c0 + i < chunks ? chunkCounts[(long long)(c0 + i) * experts + e] : 0;
#pragma unroll
            for (int i = 0; i < PERMUTE_SCAN_BATCH; i++)
                if (c0 + i < chunks)
                {
                    chunkCounts[(long long)(c0 + i) * experts + e] = count;
                    count += v[i];
                }
        }
        expertCounts[e] = count;
    }
    int padded = e < experts ? (count + blockSize - 1) / blockSize * blockSize : 0;

    // Exclusive scan of padded counts over the block: within warps, then over warp totals.
    const int inclusive = warp_inclusive_sum(padded, lane);
    if (lane == 31)
        warpTotals[warp] = inclusive;
    __syncthreads();
    if (warp == 0)
    {
        int total = lane < 16 ? warpTotals[lane] : 0;
        const int scanned = warp_inclusive_sum(total, lane);
        if (lane < 16)
            warpTotals[lane] = scanned - total; // exclusive base of each warp
        if (lane == 15)
            totalRows = scanned;
    }
    __syncthreads();
    int start = warpTotals[warp] + inclusive - padded;
    if (e < experts)
    {
        expertOffsets[e] = start;
        for (int r = start + count; r < start + padded; r++)
            tokenOfRow[r] = -1; // padding rows of this expert's segment
    }
    if (e == 0)
        expertOffsets[experts] = totalRows;
    for (int r = totalRows + e; r < rowCapacity; r += blockDim.x)
        tokenOfRow[r] = -1; // rows past the end
}
#endif

// Lanes of the warp whose `expert` equals this lane's (the same mask as __match_any_sync), for -1 <= expert < 512: one
// ballot per bit of the 10-bit label (-1 becomes 1023, no expert's label). Ballots are a few cycles each; match.any
// serialises over the distinct values in the warp (up to 32 experts a round here). PERMUTE_MATCH_INSTRUCTION
// (MOE_PERMUTE_MATCH=instruction) builds __match_any_sync instead, for A/B.
__device__ __forceinline__ unsigned lanes_with_same_expert(int expert)
{
#ifdef PERMUTE_MATCH_INSTRUCTION
    return __match_any_sync(0xffffffffu, expert);
#else
    const unsigned label = (unsigned)expert & 0x3ffu;
    unsigned same = 0xffffffffu;
#pragma unroll
    for (int bit = 0; bit < 10; bit++)
    {
        const bool set = (label >> bit) & 1u;
        const unsigned lanesSet = __ballot_sync(0xffffffffu, set);
        same &= set ? lanesSet : ~lanesSet;
    }
    return same;
#endif
}

// Places a warp's chunk: row = cursor[expert] (segment start + chunk base) + earlier slots of the same expert in
// this chunk (earlier rounds, then lower lanes of this round); moves the cursors on as it goes.
__device__ __forceinline__ void scatter_chunk(const int (&expertOf)[PERMUTE_ROUNDS], int* cursor, int chunk, int lane,
                                              long long slots, int topK, int* __restrict__ rowOfSlot, int* __restrict__ tokenOfRow)
{
    const unsigned lowerLanes = (1u << lane) - 1u;
#pragma unroll
    for (int round = 0; round < PERMUTE_ROUNDS; round++)
    {
        const long long slot = (long long)chunk * PERMUTE_CHUNK + round * 32 + lane;
        const int expert = expertOf[round];
        const unsigned same = lanes_with_same_expert(expert);
        if (expert >= 0)
        {
            int row = cursor[expert] + __popc(same & lowerLanes);
            rowOfSlot[slot] = row;
            tokenOfRow[row] = (int)(slot / topK);
        }
        else if (slot < slots)
        {
            rowOfSlot[slot] = -1; // dropped: id outside [0, experts)
        }
        __syncwarp(); // every lane has read its cursor before the leader moves it
        if (expert >= 0 && lane == __ffs(same) - 1)
            cursor[expert] += __popc(same);
        __syncwarp();
    }
}

// As permute_count_chunks, now placing each slot from the bases permute_offsets left.
#if PERMUTE_BUILDS_CHAIN
extern "C" __global__ void __launch_bounds__(32 * PERMUTE_WARPS) permute_scatter(
    const int* __restrict__ ids, long long slots, int topK, int experts, int chunks,
    const int* __restrict__ chunkBases, const int* __restrict__ expertOffsets,
    int* __restrict__ rowOfSlot, int* __restrict__ tokenOfRow)
{
    moe_wait_prior_grid();
    __shared__ int cursors[PERMUTE_WARPS][PERMUTE_MAX_EXPERTS];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int chunk = blockIdx.x * PERMUTE_WARPS + warp;
    if (chunk >= chunks)
        return;
    int* cursor = cursors[warp];
    int expertOf[PERMUTE_ROUNDS];
    load_chunk(ids, slots, experts, chunk, lane, expertOf);
    for (int e = lane; e < experts; e += 32)
        cursor[e] = expertOffsets[e] + chunkBases[(long long)chunk * experts + e];
    __syncwarp();
    scatter_chunk(expertOf, cursor, chunk, lane, slots, topK, rowOfSlot, tokenOfRow);
}
#endif

// The block's exclusive scan of one value a thread, in thread order, and the block's total; warpSums: PERMUTE_WARPS ints
// of shared memory. Synchronises the block.
__device__ __forceinline__ int block_exclusive_sum(int local, int warp, int lane, int* warpSums, int& total)
{
    const int inclusive = warp_inclusive_sum(local, lane);
    if (lane == 31)
        warpSums[warp] = inclusive;
    __syncthreads();
    int before = inclusive - local;
    total = 0;
    for (int w = 0; w < PERMUTE_WARPS; w++)
    {
        before += w < warp ? warpSums[w] : 0;
        total += warpSums[w];
    }
    return before;
}

// Segment starts by a block: starts[e] = sum over experts below e of their counts padded to blockSize (an exclusive
// scan, each thread over a run of consecutive experts, then over the warps); returns the rows in use. counts and starts
// are shared memory; starts is visible to the whole block on return. warpSums: PERMUTE_WARPS ints of shared memory.
__device__ __forceinline__ int segment_starts(const int* counts, int* starts, int experts, int blockSize, int* warpSums)
{
    const int thread = threadIdx.x, warp = thread / 32, lane = thread % 32;
    const int perThread = (experts + blockDim.x - 1) / blockDim.x;
    const int begin = min(thread * perThread, experts), end = min(begin + perThread, experts);
    int local = 0;
    for (int e = begin; e < end; e++)
        local += (counts[e] + blockSize - 1) / blockSize * blockSize;
    int totalRows;
    int start = block_exclusive_sum(local, warp, lane, warpSums, totalRows);
    for (int e = begin; e < end; e++)
    {
        starts[e] = start;
        start += (counts[e] + blockSize - 1) / blockSize * blockSize;
    }
    __syncthreads();
    return totalRows;
}

// The m-tile map (Permute.TileMap.cs) from the segment starts, by the whole block: tiles per expert
// ceil(rows_e / tileRows), an exclusive scan over the experts (each thread a run of consecutive experts, then over the
// warps, as segment_starts), then each thread writes its experts' tiles and a share of the (-1, 0, 0) entries past the
// last. starts: segment e's rows are [starts[e], starts[e + 1]), [starts[E - 1], totalRows) for the last. warpSums:
// PERMUTE_WARPS ints of shared memory. At most mapTiles tiles are written (the host sizes the map to the bound).
__device__ __forceinline__ void write_tile_map(const int* starts, int totalRows, int experts, int tileRows, int* warpSums,
                                               int* __restrict__ tileMap, int mapTiles)
{
    const int thread = threadIdx.x, warp = thread / 32, lane = thread % 32;
    const int perThread = (experts + blockDim.x - 1) / blockDim.x;
    const int begin = min(thread * perThread, experts), end = min(begin + perThread, experts);
    int local = 0;
    for (int e = begin; e < end; e++)
        local += ceil_div((e + 1 < experts ? starts[e + 1] : totalRows) - starts[e], tileRows);
    int totalTiles;
    int tile = block_exclusive_sum(local, warp, lane, warpSums, totalTiles);
    for (int e = begin; e < end; e++)
    {
        const int segmentEnd = e + 1 < experts ? starts[e + 1] : totalRows;
        for (int row = starts[e]; row < segmentEnd && tile < mapTiles; row += tileRows, tile++)
        {
            tileMap[3 * tile] = e;
            tileMap[3 * tile + 1] = row;
            tileMap[3 * tile + 2] = min(row + tileRows, segmentEnd);
        }
    }
    for (int t = totalTiles + thread; t < mapTiles; t += blockDim.x)
    {
        tileMap[3 * t] = -1;
        tileMap[3 * t + 1] = 0;
        tileMap[3 * t + 2] = 0;
    }
}

// The m-tile map of offsets already written (the separate-kernel paths; permute_one_kernel writes it itself).
// Grid 1, block 32 * PERMUTE_WARPS.
#if PERMUTE_BUILDS_CHAIN
extern "C" __global__ void __launch_bounds__(32 * PERMUTE_WARPS) permute_tile_map(
    const int* __restrict__ expertOffsets, int experts, int tileRows, int* __restrict__ tileMap, int mapTiles)
{
    moe_wait_prior_grid();
    __shared__ int starts[PERMUTE_MAX_EXPERTS];
    __shared__ int warpSums[PERMUTE_WARPS];
    for (int e = threadIdx.x; e < experts; e += blockDim.x)
        starts[e] = expertOffsets[e];
    const int totalRows = expertOffsets[experts];
    __syncthreads();
    write_tile_map(starts, totalRows, experts, tileRows, warpSums, tileMap, mapTiles);
}
#endif

// permute_offsets and permute_scatter in one kernel (one graph node fewer), for few chunks: every block reads all the
// chunk counts (left unchanged, so the workspace never needs zeroing) and works out the expert totals, the padded
// segment starts and the bases of its own chunks itself; block 0 writes expertCounts and expertOffsets. Each thread
// walks ceil(experts / blockDim) experts over all chunks, so the host keeps the three-kernel path for many chunks.
// Grid max(1, ceil(chunks / PERMUTE_WARPS)), block 32 * PERMUTE_WARPS.
#if PERMUTE_BUILDS_CHAIN
extern "C" __global__ void __launch_bounds__(32 * PERMUTE_WARPS) permute_offsets_scatter(
    const int* __restrict__ ids, long long slots, int topK, int experts, int chunks, int blockSize,
    const int* __restrict__ chunkCounts, int* __restrict__ expertCounts, int* __restrict__ expertOffsets,
    int* __restrict__ rowOfSlot, int* __restrict__ tokenOfRow, int rowCapacity)
{
    moe_wait_prior_grid();
    __shared__ int cursors[PERMUTE_WARPS][PERMUTE_MAX_EXPERTS]; // this block's chunk bases, then + segment starts
    __shared__ int totals[PERMUTE_MAX_EXPERTS];                 // slots of each expert
    __shared__ int starts[PERMUTE_MAX_EXPERTS];                 // its segment start
    __shared__ int warpSums[PERMUTE_WARPS];
    const int thread = threadIdx.x, warp = thread / 32, lane = thread % 32;
    const int firstChunk = blockIdx.x * PERMUTE_WARPS, chunk = firstChunk + warp;
    int expertOf[PERMUTE_ROUNDS];
    load_chunk(ids, slots, experts, chunk, lane, expertOf); // all -1 past the last chunk

    // Per expert, one pass over the chunks in order: the running sum at each of this block's chunks is its base.
    for (int e = thread; e < experts; e += blockDim.x)
    {
        int running = 0;
        for (int c0 = 0; c0 < chunks; c0 += PERMUTE_SCAN_BATCH)
        {
            int v[PERMUTE_SCAN_BATCH];
#pragma unroll
            for (int i = 0; i < PERMUTE_SCAN_BATCH; i++)
                v[i] = c0 + i < chunks ? chunkCounts[(long long)(c0 + i) * experts + e] : 0;
#pragma unroll
            for (int i = 0; i < PERMUTE_SCAN_BATCH; i++)
            {
                const int c = c0 + i;
                if (c >= firstChunk && c < firstChunk + PERMUTE_WARPS)
                    cursors[c - firstChunk][e] = running;
                running += v[i];
            }
        }
        totals[e] = running;
    }
    __syncthreads();

    const int totalRows = segment_starts(totals, starts, experts, blockSize, warpSums);
    for (int e = thread; e < experts; e += blockDim.x)
    {
        const int count = totals[e], start = starts[e], padded = (count + blockSize - 1) / blockSize * blockSize;
        if (blockIdx.x == 0)
        {
            expertCounts[e] = count;
            expertOffsets[e] = start;
        }
        if (e % gridDim.x == blockIdx.x)
            for (int r = start + count; r < start + padded; r++)
                tokenOfRow[r] = -1; // padding rows of this expert's segment
    }
    if (blockIdx.x == 0 && thread == 0)
        expertOffsets[experts] = totalRows;
    for (long long r = totalRows + (long long)blockIdx.x * blockDim.x + thread; r < rowCapacity; r += (long long)gridDim.x * blockDim.x)
        tokenOfRow[r] = -1; // rows past the end

    if (chunk >= chunks)
        return;
    int* cursor = cursors[warp];
    for (int e = lane; e < experts; e += 32)
        cursor[e] += starts[e];
    __syncwarp();
    scatter_chunk(expertOf, cursor, chunk, lane, slots, topK, rowOfSlot, tokenOfRow);
}
#endif

// Row `token` of hidden into destination (zeros for -1), GATHER_UNROLL loads in flight per thread before the stores.
template <typename Unit>
__device__ __forceinline__ void copy_row(const Unit* __restrict__ hidden, int token, long long rowUnits, Unit* __restrict__ destination)
{
    if (token < 0)
    {
        const Unit zero{};
        for (long long u = threadIdx.x; u < rowUnits; u += blockDim.x)
            destination[u] = zero;
        return;
    }
    const Unit* source = hidden + (long long)token * rowUnits;
    // A row is a few KB: one pass or two.
    for (long long base = threadIdx.x; base < rowUnits; base += GATHER_UNROLL * blockDim.x)
    {
        Unit staged[GATHER_UNROLL];
#pragma unroll
        for (int i = 0; i < GATHER_UNROLL; i++)
        {
            long long u = base + (long long)i * blockDim.x;
            if (u < rowUnits)
                staged[i] = source[u];
        }
#pragma unroll
        for (int i = 0; i < GATHER_UNROLL; i++)
        {
            long long u = base + (long long)i * blockDim.x;
            if (u < rowUnits)
                destination[u] = staged[i];
        }
    }
}

// Row r of gathered = row tokenOfRow[r] of hidden (zeros for -1); rows >= expertOffsets[experts] untouched.
template <typename Unit>
__device__ __forceinline__ void gather_rows(const Unit* __restrict__ hidden, const int* __restrict__ tokenOfRow,
    const int* __restrict__ expertOffsets, int experts, long long rowUnits, Unit* __restrict__ gathered)
{
    // Both index loads issued together (one memory latency before the row's loads, not two); the grid is rowCapacity
    // blocks, so tokenOfRow[row] is in bounds even for a row past the end.
    const int row = blockIdx.x;
    const int rowsInUse = expertOffsets[experts];
    const int token = tokenOfRow[row];
    if (row >= rowsInUse)
        return;
    copy_row(hidden, token, rowUnits, gathered + (long long)row * rowUnits);
}

#define GATHER_ENTRY(NAME, UNIT)                                                                          \
    extern "C" __global__ void __launch_bounds__(GATHER_THREADS) NAME(const UNIT* hidden, const int* tokenOfRow, \
        const int* expertOffsets, int experts, long long rowUnits, UNIT* gathered)                       \
    {                                                                                                     \
        moe_wait_prior_grid();                                                                           \
        gather_rows<UNIT>(hidden, tokenOfRow, expertOffsets, experts, rowUnits, gathered);               \
    }

#if PERMUTE_BUILDS_CHAIN
GATHER_ENTRY(gather_rows_u128, uint4)
GATHER_ENTRY(gather_rows_u32, unsigned int)
GATHER_ENTRY(gather_rows_u16, unsigned short)
#endif

// The whole permute for one chunk of slots (slots <= PERMUTE_CHUNK) and rowCapacity <= PERMUTE_ONE_KERNEL_ROWS, as one
// kernel (three graph nodes become one at decode sizes). Every block works the order out itself from the ids, the same
// steps as above: counts by shared-memory atomics, segment starts, then warp 0 places the slots round by round (stable)
// into a shared token-of-row table; block 0 writes expertCounts, expertOffsets, rowOfSlot and tokenOfRow; then block b
// copies rows b, b + grid, ... (hidden null: no gather); with a tileMap (else null), block 0 writes the m-tile map
// (write_tile_map) too. Block 32 * PERMUTE_WARPS = GATHER_THREADS threads.
template <typename Unit>
__device__ __forceinline__ void permute_one_kernel(const int* __restrict__ ids, long long slots, int topK, int experts, int blockSize,
    int* __restrict__ expertCounts, int* __restrict__ expertOffsets, int* __restrict__ rowOfSlot, int* __restrict__ tokenOfRow,
    int rowCapacity, const Unit* __restrict__ hidden, long long rowUnits, Unit* __restrict__ gathered,
    int* __restrict__ tileMap, int tileRows, int mapTiles)
{
    __shared__ int counts[PERMUTE_MAX_EXPERTS];
    __shared__ int starts[PERMUTE_MAX_EXPERTS]; // segment starts, then warp 0's cursors
    __shared__ int rowToken[PERMUTE_ONE_KERNEL_ROWS];
    __shared__ int warpSums[PERMUTE_WARPS];
    const int thread = threadIdx.x, warp = thread / 32, lane = thread % 32;
    const bool writer = blockIdx.x == 0;
    int expertOf[PERMUTE_ROUNDS];
    if (warp == 0)
        load_chunk(ids, slots, experts, 0, lane, expertOf);
    for (int e = thread; e < experts; e += blockDim.x)
        counts[e] = 0;
    for (int r = thread; r < rowCapacity; r += blockDim.x)
        rowToken[r] = -1; // padding rows and rows past the end stay -1
    __syncthreads();
    for (int slot = thread; slot < slots; slot += blockDim.x)
    {
        const int e = valid_expert(ids, slot, slots, experts);
        if (e >= 0)
            atomicAdd(&counts[e], 1);
    }
    __syncthreads();
    const int totalRows = segment_starts(counts, starts, experts, blockSize, warpSums);
    if (writer)
    {
        for (int e = thread; e < experts; e += blockDim.x)
        {
            expertCounts[e] = counts[e];
            expertOffsets[e] = starts[e];
        }
        if (thread == 0)
            expertOffsets[experts] = totalRows;
        if (tileMap != nullptr) // the same for the whole block, so its syncs are safe
            write_tile_map(starts, totalRows, experts, tileRows, warpSums, tileMap, mapTiles);
    }
    __syncthreads(); // every start read before warp 0 moves them on as cursors
    if (warp == 0)
    {
        const unsigned lowerLanes = (1u << lane) - 1u;
#pragma unroll
        for (int round = 0; round < PERMUTE_ROUNDS; round++)
        {
            if (round * 32 >= slots)
                break;
            const int slot = round * 32 + lane;
            const int expert = expertOf[round];
            const unsigned same = lanes_with_same_expert(expert);
            if (expert >= 0)
            {
                const int row = starts[expert] + __popc(same & lowerLanes);
                rowToken[row] = slot / topK;
                if (writer)
                    rowOfSlot[slot] = row;
            }
            else if (writer && slot < slots)
            {
                rowOfSlot[slot] = -1; // dropped: id outside [0, experts)
            }
            __syncwarp(); // every lane has read its cursor before the leader moves it
            if (expert >= 0 && lane == __ffs(same) - 1)
                starts[expert] += __popc(same);
            __syncwarp();
        }
    }
    __syncthreads();
    if (writer)
        for (int r = thread; r < rowCapacity; r += blockDim.x)
            tokenOfRow[r] = rowToken[r];
    if (hidden == nullptr)
        return;
    for (int row = blockIdx.x; row < totalRows; row += gridDim.x)
        copy_row(hidden, rowToken[row], rowUnits, gathered + (long long)row * rowUnits);
}

#define ONE_KERNEL_ENTRY(NAME, UNIT)                                                                                       \
    extern "C" __global__ void __launch_bounds__(32 * PERMUTE_WARPS) NAME(const int* ids, long long slots, int topK,      \
        int experts, int blockSize, int* expertCounts, int* expertOffsets, int* rowOfSlot, int* tokenOfRow,               \
        int rowCapacity, const UNIT* hidden, long long rowUnits, UNIT* gathered, int* tileMap, int tileRows, int mapTiles) \
    {                                                                                                                      \
        moe_wait_prior_grid();                                                                                            \
        permute_one_kernel<UNIT>(ids, slots, topK, experts, blockSize, expertCounts, expertOffsets, rowOfSlot, tokenOfRow, \
                                 rowCapacity, hidden, rowUnits, gathered, tileMap, tileRows, mapTiles);                    \
    }

#if !defined(PERMUTE_ONE_GROUP) || defined(PERMUTE_GROUP_one_u128)
ONE_KERNEL_ENTRY(permute_one_kernel_u128, uint4)
#endif
#if !defined(PERMUTE_ONE_GROUP) || defined(PERMUTE_GROUP_one_u32)
ONE_KERNEL_ENTRY(permute_one_kernel_u32, unsigned int)
#endif
#if !defined(PERMUTE_ONE_GROUP) || defined(PERMUTE_GROUP_one_u16)
ONE_KERNEL_ENTRY(permute_one_kernel_u16, unsigned short)
#endif
