using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using MoeRuntime.Accelerators;

namespace MoeRuntime.Runtime.Checkpoints;

/// <summary>
/// Builds a safetensors file in memory and writes it in one go (to a temporary name, then moved, so a
/// reader never sees half a file). Tensors are laid out in the order added; the header is padded with
/// spaces to a multiple of 8 bytes so every tensor starts 8-byte aligned.
/// </summary>
public sealed class SafetensorsWriter
{
    private readonly List<(string Name, SafetensorsDType DType, long[] Shape, byte[] Data)> _tensors = [];
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    public Dictionary<string, string> Metadata { get; } = new(StringComparer.Ordinal);

    public int Count => _tensors.Count;

    /// <summary>Adds a tensor from raw little-endian bytes; the byte length must equal shape x dtype width.</summary>
    public SafetensorsWriter Add(string name, SafetensorsDType dtype, long[] shape, ReadOnlySpan<byte> data)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(shape);
        if (name == "__metadata__")
            throw new ArgumentException("'__metadata__' is reserved for the metadata entry", nameof(name));
        if (!_names.Add(name))
            throw new ArgumentException($"tensor '{name}' was already added", nameof(name));
        long expected = SafetensorsDTypes.SizeOf(dtype);
        foreach (long dim in shape)
        {
            if (dim < 0)
                throw new ArgumentException($"tensor '{name}': negative dimension in shape [{string.Join(", ", shape)}]", nameof(shape));
            expected = checked(expected * dim);
        }
        if (expected != data.Length)
        {
            _names.Remove(name);
            throw new ArgumentException($"tensor '{name}': shape [{string.Join(", ", shape)}] x {dtype} needs {expected} bytes, got {data.Length}", nameof(data));
        }
        _tensors.Add((name, dtype, (long[])shape.Clone(), data.ToArray()));
        return this;
    }

    /// <summary>Adds a tensor of float, Half, BFloat16, double, int, long or byte elements with its natural dtype.</summary>
    public SafetensorsWriter Add<T>(string name, ReadOnlySpan<T> values, params long[] shape) where T : unmanaged =>
        Add(name, DTypeOf<T>(), shape, MemoryMarshal.AsBytes(values));

    public SafetensorsWriter Add<T>(string name, T[] values, params long[] shape) where T : unmanaged =>
        Add(name, (ReadOnlySpan<T>)values, shape);

    /// <summary>The header JSON (before padding) for the tensors added so far.</summary>
    public byte[] BuildHeader()
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream))
        {
            json.WriteStartObject();
            if (Metadata.Count > 0)
            {
                json.WriteStartObject("__metadata__");
                foreach (var (key, value) in Metadata)
                    json.WriteString(key, value);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, dtype, shape, data) in _tensors)
            {
                json.WriteStartObject(name);
                json.WriteString("dtype", SafetensorsDTypes.Name(dtype));
                json.WriteStartArray("shape");
                foreach (long dim in shape)
                    json.WriteNumberValue(dim);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + data.Length);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += data.Length;
            }
            json.WriteEndObject();
        }
        return stream.ToArray();
    }

    public void Write(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        byte[] header = BuildHeader();
        int padding = (8 - header.Length % 8) % 8;
        string temporary = path + ".tmp-" + Environment.ProcessId + "-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            using (var file = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write))
            {
                Span<byte> length = stackalloc byte[8];
                System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)(header.Length + padding));
                file.Write(length);
                file.Write(header);
                file.Write(Encoding.ASCII.GetBytes(new string(' ', padding)));
                foreach (var tensor in _tensors)
                    file.Write(tensor.Data);
            }
            File.Move(temporary, path, overwrite: true);
        }
        catch
        {
            File.Delete(temporary);
            throw;
        }
    }

    public static SafetensorsDType DTypeOf<T>() where T : unmanaged =>
        typeof(T) == typeof(float) ? SafetensorsDType.F32 :
        typeof(T) == typeof(Half) ? SafetensorsDType.F16 :
        typeof(T) == typeof(BFloat16) ? SafetensorsDType.BF16 :
        typeof(T) == typeof(double) ? SafetensorsDType.F64 :
        typeof(T) == typeof(int) ? SafetensorsDType.I32 :
        typeof(T) == typeof(long) ? SafetensorsDType.I64 :
        typeof(T) == typeof(byte) ? SafetensorsDType.U8 :
        throw new NotSupportedException($"{typeof(T).Name} has no safetensors dtype here (use float, Half, BFloat16, double, int, long or byte)");
}
