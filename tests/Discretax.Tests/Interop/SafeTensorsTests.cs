using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Discretax.Interop;
using static Discretax.Tests.Interop.InteropTestUtil;
using static TorchSharp.torch;

namespace Discretax.Tests.Interop;

/// <summary>
/// The safetensors writer and reader: a round trip of every dtype is exact, the bytes are the format's (checked
/// against a file laid out by hand), the header is aligned as the reference writer aligns it, and every kind of
/// malformed file is refused with an exception naming the file and the tensor.
/// </summary>
public class SafeTensorsTests
{
    /// <summary>One seeded tensor of each safetensors dtype, plus a 0-d, an empty and a transposed (non-contiguous) one.</summary>
    private static Dictionary<string, Tensor> EveryDType(Generator g) => new()
    {
        ["f64"] = randn([3, 2], ScalarType.Float64, generator: g),
        ["f32"] = randn([2, 3, 2], ScalarType.Float32, generator: g),
        ["f16"] = randn([5], ScalarType.Float32, generator: g).to(ScalarType.Float16),
        ["bf16"] = randn([2, 2], ScalarType.Float32, generator: g).to(ScalarType.BFloat16),
        ["i64"] = randint(long.MinValue / 2, long.MaxValue / 2, [4], ScalarType.Int64, generator: g),
        ["i32"] = randint(int.MinValue, int.MaxValue, [3], ScalarType.Int32, generator: g),
        ["i16"] = randint(short.MinValue, short.MaxValue, [3], ScalarType.Int16, generator: g),
        ["i8"] = randint(-128, 127, [3], ScalarType.Int8, generator: g),
        ["u8"] = randint(0, 255, [3], ScalarType.Byte, generator: g),
        ["bool"] = randint(0, 2, [5], ScalarType.Int64, generator: g).to(ScalarType.Bool),
        ["scalar"] = tensor(2.5, ScalarType.Float64),
        ["empty"] = zeros([0, 3], ScalarType.Float32),
        ["transposed"] = randn([3, 4], ScalarType.Float32, generator: g).t(),
    };

    [Fact]
    public void RoundTripOfEveryDTypeIsExactWithMetadata()
    {
        using var scope = NewDisposeScope();
        var tensors = EveryDType(new Generator(11));
        tensors["transposed"].is_contiguous().Should().BeFalse();
        string dir = TempDir();
        string path = Path.Combine(dir, "all.safetensors");
        var meta = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode ok" };
        SafeTensors.Write(path, tensors, meta);

        using var back = SafeTensors.Read(path);
        back.Names.Should().BeEquivalentTo(tensors.Keys);
        foreach (var (name, t) in tensors) Same(back[name], t.contiguous()).Should().BeTrue(name);
        back.Metadata.Should().Equal(meta);
        Directory.GetFiles(dir).Should().Equal(path);   // no temporary file left
        Directory.Delete(dir, true);
    }

    [Fact]
    public void BytesAreTheFormatsLaidOutByHand()
    {
        using var scope = NewDisposeScope();
        string path = Path.Combine(TempDir(), "tiny.safetensors");
        SafeTensors.Write(path, new Dictionary<string, Tensor>
        {
            ["b"] = tensor(new short[] { 1, -2 }),
            ["a"] = tensor(new[] { 1.0f, -2.0f }),
        }, new Dictionary<string, string> { ["format"] = "pt" });

        // Hand-built: the float32 tensor first (larger elements first), the header padded with spaces to 8 bytes.
        string json = "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      + "\"b\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[8,12]}}";
        json += new string(' ', (8 - json.Length % 8) % 8);
        var expected = new List<byte>();
        expected.AddRange(BitConverter.GetBytes((ulong)json.Length));
        expected.AddRange(Encoding.UTF8.GetBytes(json));
        expected.AddRange(BitConverter.GetBytes(1.0f));
        expected.AddRange(BitConverter.GetBytes(-2.0f));
        expected.AddRange(BitConverter.GetBytes((short)1));
        expected.AddRange(BitConverter.GetBytes((short)-2));
        File.ReadAllBytes(path).Should().Equal(expected);
        Directory.Delete(Path.GetDirectoryName(path)!, true);
    }

    [Fact]
    public void EveryTensorIsAlignedToItsElementSize()
    {
        using var scope = NewDisposeScope();
        string path = Path.Combine(TempDir(), "aligned.safetensors");
        SafeTensors.Write(path, EveryDType(new Generator(12)));
        var bytes = File.ReadAllBytes(path);
        long n = BinaryPrimitives.ReadInt64LittleEndian(bytes);
        (n % 8).Should().Be(0);
        using var doc = JsonDocument.Parse(bytes.AsMemory(8, (int)n));
        var size = new Dictionary<string, int> { ["F64"] = 8, ["I64"] = 8, ["F32"] = 4, ["I32"] = 4, ["F16"] = 2, ["BF16"] = 2, ["I16"] = 2 };
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            long begin = p.Value.GetProperty("data_offsets")[0].GetInt64();
            ((8 + n + begin) % size.GetValueOrDefault(p.Value.GetProperty("dtype").GetString()!, 1)).Should().Be(0, p.Name);
        }
        Directory.Delete(Path.GetDirectoryName(path)!, true);
    }

    [Fact]
    public void WritingOverALargerFileLeavesNoTrailingBytes()
    {
        using var scope = NewDisposeScope();
        string path = Path.Combine(TempDir(), "over.safetensors");
        File.WriteAllBytes(path, new byte[10_000]);
        SafeTensors.Write(path, new Dictionary<string, Tensor> { ["x"] = ones(3) });
        new FileInfo(path).Length.Should().BeLessThan(200);
        using var back = SafeTensors.Read(path);   // the reader refuses trailing bytes, so this also checks them
        TestUtil.Values(back["x"]).Should().Equal(1, 1, 1);
        Directory.Delete(Path.GetDirectoryName(path)!, true);
    }

    [Fact]
    public void WriteRefusesWhatTheFormatCannotHoldNamingTheTensor()
    {
        using var scope = NewDisposeScope();
        string path = Path.Combine(Path.GetTempPath(), "never-" + Guid.NewGuid().ToString("N") + ".safetensors");
        var complexTensor = () => SafeTensors.Write(path, new Dictionary<string, Tensor> { ["z"] = zeros(2, ScalarType.ComplexFloat32) });
        complexTensor.Should().Throw<ArgumentException>().WithMessage("*'z'*ComplexFloat32*").Which.ParamName.Should().Be("tensors");
        var reserved = () => SafeTensors.Write(path, new Dictionary<string, Tensor> { ["__metadata__"] = zeros(2) });
        reserved.Should().Throw<ArgumentException>().WithMessage("*__metadata__*");
        var twice = () => SafeTensors.Write(path, [new("a", zeros(1)), new("a", zeros(1))]);
        twice.Should().Throw<ArgumentException>().WithMessage("*'a' comes twice*");
        File.Exists(path).Should().BeFalse();
    }

    /// <summary>A file of a given header and a zeroed data section of <paramref name="dataBytes"/> bytes.</summary>
    private static string Craft(string header, int dataBytes, string dir)
    {
        string path = Path.Combine(dir, "bad.safetensors");
        var h = Encoding.UTF8.GetBytes(header);
        using var f = File.Create(path);
        f.Write(BitConverter.GetBytes((ulong)h.Length));
        f.Write(h);
        f.Write(new byte[dataBytes]);
        return path;
    }

    [Theory]
    [InlineData("{\"a\":{\"dtype\":\"Q32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "a", "Unknown dtype 'Q32'*")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", 8, "a", "*out of range*<= 8*")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "a", "*hold 8 bytes*needs 12*")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "b", "*overlap*'a'*")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, "b", "*leave the bytes [4, 8)*")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12, null, "*end at byte 8*has 12*")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "a", "*not a list of non-negative integers*")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "a", "*no data_offsets*")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "a", "*comes twice*")]
    [InlineData("{\"__metadata__\":{\"n\":3},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, null, "*__metadata__ entry 'n' is not a string*")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",", 8, null, "*not valid JSON*")]
    [InlineData("[1, 2]", 8, null, "*does not begin with '{'*")]
    public void MalformedHeadersAreRefusedNamingFileAndTensor(string header, int dataBytes, string? tensor, string message)
    {
        string dir = TempDir();
        string path = Craft(header, dataBytes, dir);
        var act = () => SafeTensors.Read(path);
        var ex = act.Should().Throw<CheckpointFormatException>().Which;
        ex.Message.Should().StartWith(path).And.Match("*" + message);
        ex.FilePath.Should().Be(path);
        ex.TensorName.Should().Be(tensor);
        if (tensor is not null) ex.Message.Should().Contain($"tensor '{tensor}'");
        Directory.Delete(dir, true);
    }

    [Fact]
    public void BadHeaderLengthsAreRefused()
    {
        string dir = TempDir();
        string tooShort = Path.Combine(dir, "short.safetensors");
        File.WriteAllBytes(tooShort, [1, 2, 3]);
        var a = () => SafeTensors.Read(tooShort);
        a.Should().Throw<CheckpointFormatException>().WithMessage("*3 bytes, fewer than the 8*");

        string tooLong = Path.Combine(dir, "long.safetensors");
        var bytes = File.ReadAllBytes(Fixture("tensors.safetensors"));
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)bytes.Length);   // more than the file holds
        File.WriteAllBytes(tooLong, bytes);
        var b = () => SafeTensors.Read(tooLong);
        b.Should().Throw<CheckpointFormatException>().WithMessage($"*header length is {bytes.Length} bytes*truncated*");

        string truncated = Path.Combine(dir, "truncated.safetensors");
        var whole = File.ReadAllBytes(Fixture("tensors.safetensors"));
        File.WriteAllBytes(truncated, whole[..^5]);                                // the last tensor's bytes cut off
        var c = () => SafeTensors.Read(truncated);
        c.Should().Throw<CheckpointFormatException>().Which.TensorName.Should().NotBeNull();
        Directory.Delete(dir, true);
    }
}
