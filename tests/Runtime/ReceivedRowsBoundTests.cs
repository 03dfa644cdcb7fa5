using MoeRuntime.Runtime.Layers;

namespace MoeRuntime.Tests.Runtime;

/// <summary>
/// The bound an expert-parallel rank gives its GEMMs (GroupedGemmOptions.MaxRowsPerExpert): the most rows any local expert
/// received, counted on the host from the local ids it already holds.
/// </summary>
public class ReceivedRowsBoundTests
{
    [Theory]
    [InlineData(new int[0], 4, 1)]                    // no rows: the least bound
    [InlineData(new[] { 3, 0, 2, 1 }, 4, 1)]         // T = 1 over the rank: one row an expert (the GEMV's 1-row entry)
    [InlineData(new[] { 1, 1, 0, 1, 2 }, 4, 3)]
    [InlineData(new[] { 0, 7, -1, 0 }, 4, 2)]        // ids outside the rank's experts are not counted
    public void TheBoundIsTheMostRowsOfAnyLocalExpert(int[] ids, int experts, int bound)
    {
        int[] scratch = [];
        Assert.Equal(bound, ReceivedRowsWorkspace.MaxRowsPerExpert(ids, experts, ref scratch));
        Assert.True(scratch.Length >= experts);
        // The scratch is reused and cleared: a second count over other ids does not see the first's.
        Assert.Equal(1, ReceivedRowsWorkspace.MaxRowsPerExpert(new[] { 0, 1, 2, 3 }, experts, ref scratch));
    }
}
