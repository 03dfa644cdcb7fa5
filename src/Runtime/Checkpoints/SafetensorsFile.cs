using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Text.Json;

namespace MoeRuntime.Runtime.Checkpoints;

/// <summary>One tensor's header entry: dtype, shape and where its bytes lie in the data section.</summary>
public sealed record SafetensorsTensorInfo(string Name, SafetensorsDType DType, long[] Shape, long DataBegin, long DataEnd)
{
    public long ByteLength => DataEnd - DataBegin;

    public long ElementCount
    {
        get
        {
            long count = 1;
            foreach (long dim in Shape)
                count *= dim;
            return count;
        }
    }

    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}

/// <summary>
/// A safetensors file, memory-mapped and read lazily: opening parses and checks the header only;
/// tensor bytes are read on request. Layout on disk: an 8-byte little-endian header length N, N bytes
/// of JSON ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}),
/// then the data section. Every check that can fail runs at open, so a truncated or lying file is a
/// <see cref="CheckpointFormatException"/> naming the file and tensor, never a read past the end:
/// header length within the cap and the file, known dtypes, shape x width == byte length, offsets
/// inside the data section, entries contiguous, non-overlapping and covering the data section.
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    /// <summary>Largest header accepted; real checkpoints have headers of a few hundred KB.</summary>
    public const long MaxHeaderBytes = 100L * 1024 * 1024;

    private const string MetadataKey = "__metadata__";

    private readonly MemoryMappedFile? _mapping;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly Dictionary<string, SafetensorsTensorInfo> _tensors;
    private readonly long _dataStart;
    private bool _disposed;

    private SafetensorsFile(string path, MemoryMappedFile? mapping, MemoryMappedViewAccessor? view,
        Dictionary<string, SafetensorsTensorInfo> tensors, IReadOnlyDictionary<string, string> metadata, long dataStart)
    {
        FilePath = path;
        _mapping = mapping;
        _view = view;
        _tensors = tensors;
        Metadata = metadata;
        _dataStart = dataStart;
    }

    public string FilePath { get; }

    public IReadOnlyDictionary<string, string> Metadata { get; }

    public IReadOnlyCollection<SafetensorsTensorInfo> Tensors => _tensors.Values;

    public IEnumerable<string> TensorNames => _tensors.Keys;

    public bool Contains(string name) => _tensors.ContainsKey(name);

    public SafetensorsTensorInfo GetInfo(string name) =>
        _tensors.TryGetValue(name, out var info)
            ? info
            : throw new CheckpointFormatException(FilePath, name, "no such tensor in this file");

    /// <summary>Opens and validates <paramref name="path"/>; throws <see cref="CheckpointFormatException"/> on any inconsistency.</summary>
    public static SafetensorsFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"safetensors file not found: {path}", path);
        long fileLength = new FileInfo(path).Length;
        if (fileLength < 8)
            throw new CheckpointFormatException(path, null, $"file is {fileLength} bytes, shorter than the 8-byte header length");

        MemoryMappedFile? mapping = null;
        MemoryMappedViewAccessor? view = null;
        try
        {
            mapping = MemoryMappedFile.CreateFromFile(path, FileMode.Open, mapName: null, 0, MemoryMappedFileAccess.Read);
            view = mapping.CreateViewAccessor(0, fileLength, MemoryMappedFileAccess.Read);

            ulong headerLength = view.ReadUInt64(0);
            if (BitConverter.IsLittleEndian is false)
                headerLength = BinaryPrimitives.ReverseEndianness(headerLength);
            if (headerLength > MaxHeaderBytes)
                throw new CheckpointFormatException(path, null, $"header length {headerLength} exceeds the cap of {MaxHeaderBytes} bytes");
            if (8 + (long)headerLength > fileLength)
                throw new CheckpointFormatException(path, null, $"header length {headerLength} runs past the end of the file ({fileLength} bytes)");

            var headerBytes = new byte[headerLength];
            view.ReadArray(8, headerBytes, 0, headerBytes.Length);
            long dataStart = 8 + (long)headerLength;
            long dataLength = fileLength - dataStart;
            var (tensors, metadata) = ParseHeader(path, headerBytes, dataLength);
            var file = new SafetensorsFile(path, mapping, view, tensors, metadata, dataStart);
            mapping = null;
            view = null;
            return file;
        }
        finally
        {
            view?.Dispose();
            mapping?.Dispose();
        }
    }

    private static (Dictionary<string, SafetensorsTensorInfo>, IReadOnlyDictionary<string, string>) ParseHeader(
        string path, byte[] headerBytes, long dataLength)
    {
        // JsonDocument checks UTF-8 only lazily (when a string is read), so check the whole header first.
        if (!System.Text.Unicode.Utf8.IsValid(headerBytes))
            throw new CheckpointFormatException(path, null, "header is not valid UTF-8");

        JsonDocument document;
        try
        {
            // The format allows trailing spaces as padding after the JSON object.
            document = JsonDocument.Parse(headerBytes.AsMemory(), new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(path, null, $"header is not valid JSON: {e.Message}", e);
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new CheckpointFormatException(path, null, "header JSON is not an object");

            var tensors = new Dictionary<string, SafetensorsTensorInfo>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            bool sawMetadata = false;
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.Name == MetadataKey)
                {
                    if (sawMetadata)
                        throw new CheckpointFormatException(path, null, "header has __metadata__ twice");
                    sawMetadata = true;
                    ParseMetadata(path, property.Value, metadata);
                    continue;
                }
                if (tensors.ContainsKey(property.Name))
                    throw new CheckpointFormatException(path, property.Name, "header names this tensor twice");
                tensors.Add(property.Name, ParseEntry(path, property.Name, property.Value, dataLength));
            }

            CheckLayout(path, tensors.Values, dataLength);
            return (tensors, metadata);
        }
    }

    private static void ParseMetadata(string path, JsonElement element, Dictionary<string, string> metadata)
    {
        if (element.ValueKind != JsonValueKind.Object)
            throw new CheckpointFormatException(path, null, "__metadata__ is not an object of strings");
        foreach (var entry in element.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
                throw new CheckpointFormatException(path, null, $"__metadata__ value '{entry.Name}' is not a string");
            metadata[entry.Name] = entry.Value.GetString()!;
        }
    }

    private static SafetensorsTensorInfo ParseEntry(string path, string name, JsonElement entry, long dataLength)
    {
        if (entry.ValueKind != JsonValueKind.Object)
            throw new CheckpointFormatException(path, name, "header entry is not an object");
        if (!entry.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw new CheckpointFormatException(path, name, "header entry has no string 'dtype'");
        string dtypeText = dtypeElement.GetString()!;
        var dtype = SafetensorsDTypes.TryParse(dtypeText)
            ?? throw new CheckpointFormatException(path, name, $"unknown dtype '{dtypeText}'");

        if (!entry.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw new CheckpointFormatException(path, name, "header entry has no 'shape' array");
        var shape = new long[shapeElement.GetArrayLength()];
        int axis = 0;
        foreach (var dim in shapeElement.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt64(out long size) || size < 0)
                throw new CheckpointFormatException(path, name, $"shape[{axis}] is not a non-negative integer");
            shape[axis++] = size;
        }

        if (!entry.TryGetProperty("data_offsets", out var offsetsElement) || offsetsElement.ValueKind != JsonValueKind.Array
            || offsetsElement.GetArrayLength() != 2)
            throw new CheckpointFormatException(path, name, "header entry has no 'data_offsets' [begin, end]");
        long begin = ReadOffset(path, name, offsetsElement[0], "begin");
        long end = ReadOffset(path, name, offsetsElement[1], "end");
        if (end < begin)
            throw new CheckpointFormatException(path, name, $"data_offsets end {end} is before begin {begin}");
        if (end > dataLength)
            throw new CheckpointFormatException(path, name,
                $"data_offsets [{begin}, {end}] run past the end of the data section ({dataLength} bytes); the file is truncated or lies");

        long expectedBytes;
        try
        {
            expectedBytes = SafetensorsDTypes.SizeOf(dtype);
            foreach (long dim in shape)
                expectedBytes = checked(expectedBytes * dim);
        }
        catch (OverflowException)
        {
            throw new CheckpointFormatException(path, name, "shape x dtype width overflows 64 bits");
        }

        var info = new SafetensorsTensorInfo(name, dtype, shape, begin, end);
        if (expectedBytes != info.ByteLength)
            throw new CheckpointFormatException(path, name,
                $"shape {info.ShapeText} x {dtypeText} ({SafetensorsDTypes.SizeOf(dtype)} bytes) = {expectedBytes} bytes, but data_offsets span {info.ByteLength}");
        return info;
    }

    private static long ReadOffset(string path, string name, JsonElement element, string which)
    {
        if (element.ValueKind != JsonValueKind.Number || !element.TryGetInt64(out long value) || value < 0)
            throw new CheckpointFormatException(path, name, $"data_offsets {which} is not a non-negative integer");
        return value;
    }

    /// <summary>Entries sorted by offset must tile the data section exactly: no gap, no overlap, nothing left over.</summary>
    private static void CheckLayout(string path, IEnumerable<SafetensorsTensorInfo> tensors, long dataLength)
    {
        long expectedBegin = 0;
        SafetensorsTensorInfo? previous = null;
        foreach (var info in tensors.OrderBy(t => t.DataBegin).ThenBy(t => t.DataEnd))
        {
            if (info.DataBegin < expectedBegin)
                throw new CheckpointFormatException(path, info.Name,
                    $"data_offsets [{info.DataBegin}, {info.DataEnd}] overlap tensor '{previous!.Name}' [{previous.DataBegin}, {previous.DataEnd}]");
            if (info.DataBegin > expectedBegin)
                throw new CheckpointFormatException(path, info.Name,
                    $"data_offsets begin {info.DataBegin} leaves a gap after byte {expectedBegin} (entries must be contiguous)");
            expectedBegin = info.DataEnd;
            previous = info;
        }
        if (expectedBegin != dataLength)
            throw new CheckpointFormatException(path, null,
                $"tensors cover {expectedBegin} bytes of a {dataLength}-byte data section (trailing bytes not described by the header)");
    }

    /// <summary>Copies the raw bytes of <paramref name="name"/> into <paramref name="destination"/> (exactly its byte length).</summary>
    public void ReadBytes(string name, Span<byte> destination)
    {
        var info = GetInfo(name);
        if (destination.Length != info.ByteLength)
            throw new ArgumentException($"destination holds {destination.Length} bytes, tensor '{name}' has {info.ByteLength}", nameof(destination));
        ReadBytes(name, 0, destination);
    }

    public byte[] ReadBytes(string name)
    {
        var info = GetInfo(name);
        if (info.ByteLength > Array.MaxLength)
            throw new CheckpointFormatException(FilePath, name, $"{info.ByteLength} bytes do not fit one array; read it in slices");
        var bytes = new byte[info.ByteLength];
        ReadBytes(name, bytes);
        return bytes;
    }

    /// <summary>Bytes [offset, offset + destination.Length) of a tensor's data: reads large tensors in slices (e.g. one expert at a time).</summary>
    public unsafe void ReadBytes(string name, long offset, Span<byte> destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var info = GetInfo(name);
        if (offset < 0 || offset > info.ByteLength || destination.Length > info.ByteLength - offset)
            throw new ArgumentOutOfRangeException(nameof(offset), $"slice [{offset}, {offset + destination.Length}) is outside tensor '{name}' ({info.ByteLength} bytes)");
        if (destination.Length == 0)
            return;
        byte* basePointer = null;
        var handle = _view!.SafeMemoryMappedViewHandle;
        handle.AcquirePointer(ref basePointer);
        try
        {
            byte* source = basePointer + _view.PointerOffset + _dataStart + info.DataBegin + offset;
            new ReadOnlySpan<byte>(source, destination.Length).CopyTo(destination);
        }
        finally
        {
            handle.ReleasePointer();
        }
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        _view?.Dispose();
        _mapping?.Dispose();
    }

    public override string ToString() => $"{FilePath} ({_tensors.Count} tensors)";
}
