namespace MoeRuntime.Benchmarks.Infrastructure;

/// <summary>
/// A traced kernel build's per-block %globaltimer stamps ([blocks, stamps] ns) as a table: relative to the earliest
/// first stamp, the min / median / max over blocks of each stamp, then the span to the last block's last stamp.
/// </summary>
internal static class StampTable
{
    /// <param name="working">The blocks whose later stamps count (all blocks count for the first stamp).</param>
    /// <param name="stride">Values a block (0: the names': a block's values are its stamps and nothing else).</param>
    public static void Print(string header, long[] stamps, int blocks, string[] names, IReadOnlyList<int> working, int stride = 0)
    {
        int n = names.Length, s = stride == 0 ? n : stride;
        long origin = Enumerable.Range(0, blocks).Select(b => stamps[b * s]).Where(t => t != 0).DefaultIfEmpty(0L).Min();
        Console.WriteLine(header);
        Console.WriteLine($"  {"stamp",-18} {"min",8} {"median",8} {"max",8}");
        for (int stamp = 0; stamp < n; stamp++)
        {
            var over = stamp < 1 ? Enumerable.Range(0, blocks) : working;
            var us = over.Select(b => stamps[b * s + stamp]).Where(t => t != 0).Select(t => (t - origin) / 1e3).Order().ToList();
            if (us.Count == 0)
                continue;
            Console.WriteLine($"  {names[stamp],-18} {us[0],8:F2} {us[us.Count / 2],8:F2} {us[^1],8:F2}");
        }
        var ends = working.Select(b => stamps[b * s + n - 1]).Where(t => t != 0).ToList();
        if (ends.Count > 0)
            Console.WriteLine($"  span to the last block's end: {(ends.Max() - origin) / 1e3:F2} us");
    }
}
