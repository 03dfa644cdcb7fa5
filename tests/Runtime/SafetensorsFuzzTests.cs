using FsCheck;
using FsCheck.Fluent;
using MoeRuntime.Runtime.Checkpoints;

namespace MoeRuntime.Tests.Runtime;

/// <summary>
/// Property: a damaged file (bytes overwritten anywhere, or cut short anywhere) either opens, and then every
/// tensor reads back exactly its byte length, or is refused with a <see cref="CheckpointFormatException"/>:
/// never another exception, never a read past the end.
/// </summary>
public sealed class SafetensorsFuzzTests : IDisposable
{
    private readonly TempFolder _folder = new();
    private readonly byte[] _original;

    public SafetensorsFuzzTests()
    {
        string path = _folder.File("original.safetensors");
        new SafetensorsWriter()
            .Add("a.weight", new float[] { 1, 2, 3, 4, 5, 6 }, 2, 3)
            .Add("b.bias", new Half[] { (Half)1, (Half)2 }, 2)
            .Add("c.codes", SafetensorsDType.F8_E4M3, [3], [0x38, 0x40, 0x7E])
            .Write(path);
        _original = File.ReadAllBytes(path);
    }

    public void Dispose() => _folder.Dispose();

    private bool OpensSafelyOrIsRefused(byte[] bytes)
    {
        string path = _folder.File(Guid.NewGuid().ToString("N"));
        File.WriteAllBytes(path, bytes);
        try
        {
            using var file = SafetensorsFile.Open(path);
            long total = 0;
            foreach (var info in file.Tensors)
            {
                total += file.ReadBytes(info.Name).LongLength;
                if (info.ByteLength != info.ElementCount * SafetensorsDTypes.SizeOf(info.DType))
                    return false;
            }
            return total <= bytes.Length;
        }
        catch (CheckpointFormatException)
        {
            return true;
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void OverwrittenBytesNeverCrashTheReader()
    {
        var gen = from position in Gen.Choose(0, _original.Length - 1)
                  from value in Gen.Choose(0, 255)
                  select (position, value);
        var property = Prop.ForAll(gen.ToArbitrary(), change =>
        {
            var bytes = (byte[])_original.Clone();
            bytes[change.position] = (byte)change.value;
            return OpensSafelyOrIsRefused(bytes);
        });
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(500), property);
    }

    [Fact]
    public void InvalidUtf8InTheHeaderIsRefused()
    {
        var bytes = (byte[])_original.Clone();
        bytes[10] = 0xCD; // inside the first tensor name: a lone UTF-8 lead byte
        string path = _folder.File("utf8");
        File.WriteAllBytes(path, bytes);
        Assert.Contains("not valid UTF-8", Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.Open(path).Dispose()).Message);
    }

    [Fact]
    public void CutShortFilesAreRefused()
    {
        for (int length = 0; length < _original.Length; length++)
        {
            string path = _folder.File($"cut-{length}");
            File.WriteAllBytes(path, _original[..length]);
            Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.Open(path).Dispose());
        }
    }
}
