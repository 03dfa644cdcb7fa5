using MoeRuntime.Runtime.Eplb;

namespace MoeRuntime.Tests.Eplb;

public class PlacementFileTests
{
    [Fact]
    public void ReadsCountsAndPlansFromThem()
    {
        string path = Path.Combine(Path.GetTempPath(), $"eplb-loads-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, "[4, 3, 2, 1]");
        try
        {
            Assert.Equal(new long[] { 4, 3, 2, 1 }, PlacementFile.ReadLoads(path));
            var p = PlacementFile.Plan(path, gpus: 2, slotsPerGpu: 2);
            Assert.Equal(new[] { new[] { 0, 3 }, new[] { 1, 2 } }, p.ToSlotTable());
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData("{\"loads\": [1, 2]}", "expected a JSON array")]
    [InlineData("[]", "empty")]
    [InlineData("[1, -2, 3]", "element 1 is -2")]
    [InlineData("[1, 2.5]", "element 1 (2.5) is not an integer")]
    [InlineData("[1, \"7\"]", "element 1 is a string")]
    [InlineData("[1, 2", "not valid JSON")]
    [InlineData("12", "expected a JSON array")]
    public void RejectsWhatIsNotAListOfCounts(string json, string message)
    {
        var error = Assert.Throws<FormatException>(() => PlacementFile.ParseLoads(json, "loads.json"));
        Assert.Contains(message, error.Message);
        Assert.StartsWith("loads.json", error.Message);
    }

    [Fact]
    public void AMissingFileSaysWhichFile()
    {
        var error = Assert.Throws<FileNotFoundException>(() => PlacementFile.ReadLoads("/nonexistent/eplb/loads.json"));
        Assert.Contains("/nonexistent/eplb/loads.json", error.Message);
    }
}
