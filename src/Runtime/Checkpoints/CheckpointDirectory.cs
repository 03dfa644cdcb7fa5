using System.Text.Json;

namespace MoeRuntime.Runtime.Checkpoints;

/// <summary>
/// The tensors of a Hugging Face checkpoint folder: one <c>model.safetensors</c>, or shards listed by
/// <c>model.safetensors.index.json</c> (<c>{"weight_map": {tensor: shard file}}</c>). Shards are opened
/// on first use only, so reading one layer touches only the shards that hold it.
/// </summary>
public sealed class CheckpointDirectory : IDisposable
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    private readonly Dictionary<string, string>? _weightMap;
    private readonly Dictionary<string, SafetensorsFile> _openFiles = new(StringComparer.Ordinal);
    private bool _disposed;

    private CheckpointDirectory(string directory, Dictionary<string, string>? weightMap)
    {
        Directory = directory;
        _weightMap = weightMap;
    }

    public string Directory { get; }

    public bool IsSharded => _weightMap is not null;

    /// <summary>File names (relative to the folder) of the shards opened so far.</summary>
    public IReadOnlyCollection<string> OpenedFiles => _openFiles.Keys;

    public static CheckpointDirectory Open(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (!System.IO.Directory.Exists(directory))
            throw new DirectoryNotFoundException($"checkpoint folder not found: {directory}");
        string indexPath = Path.Combine(directory, IndexFileName);
        if (File.Exists(indexPath))
            return new CheckpointDirectory(directory, ReadIndex(indexPath));
        if (File.Exists(Path.Combine(directory, SingleFileName)))
            return new CheckpointDirectory(directory, null);
        throw new FileNotFoundException($"checkpoint folder {directory} has neither {SingleFileName} nor {IndexFileName}");
    }

    private static Dictionary<string, string> ReadIndex(string indexPath)
    {
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(indexPath));
            if (!document.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new CheckpointFormatException(indexPath, null, "index has no 'weight_map' object");
            var weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String)
                    throw new CheckpointFormatException(indexPath, entry.Name, "weight_map value is not a file name");
                string file = entry.Value.GetString()!;
                // A shard is a plain file name beside the index: nothing may point outside the folder.
                if (file.Length == 0 || file != Path.GetFileName(file) || file is "." or "..")
                    throw new CheckpointFormatException(indexPath, entry.Name, $"weight_map names '{file}', which is not a file in this folder");
                weightMap[entry.Name] = file;
            }
            return weightMap;
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(indexPath, null, $"index is not valid JSON: {e.Message}", e);
        }
    }

    /// <summary>The files a tensor could be in: its shard per the index, or the single file.</summary>
    public string DescribeSearched(string name) =>
        _weightMap is null ? Path.Combine(Directory, SingleFileName)
        : _weightMap.TryGetValue(name, out var file) ? Path.Combine(Directory, file)
        : Path.Combine(Directory, IndexFileName) + " (weight_map)";

    public bool Contains(string name)
    {
        if (_weightMap is not null)
            return _weightMap.TryGetValue(name, out var file) && OpenFile(file).Contains(name);
        return OpenFile(SingleFileName).Contains(name);
    }

    /// <summary>The file holding <paramref name="name"/>; a clear error naming the files searched when absent.</summary>
    public SafetensorsFile FileOf(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        string file;
        if (_weightMap is null)
            file = SingleFileName;
        else if (!_weightMap.TryGetValue(name, out file!))
            throw new CheckpointFormatException(DescribeSearched(name), name, "tensor is not in the checkpoint's weight_map");
        var opened = OpenFile(file);
        if (!opened.Contains(name))
            throw new CheckpointFormatException(opened.FilePath, name,
                _weightMap is null ? "tensor is missing" : "weight_map points here but the shard has no such tensor");
        return opened;
    }

    public SafetensorsTensorInfo GetInfo(string name) => FileOf(name).GetInfo(name);

    private SafetensorsFile OpenFile(string file)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_openFiles.TryGetValue(file, out var opened))
        {
            opened = SafetensorsFile.Open(Path.Combine(Directory, file));
            _openFiles.Add(file, opened);
        }
        return opened;
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        foreach (var file in _openFiles.Values)
            file.Dispose();
        _openFiles.Clear();
    }
}
