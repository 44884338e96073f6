using static TorchSharp.torch;

namespace Discretax.Interop;

/// <summary>The dtype names of the file formats.</summary>
internal static class DTypes
{
    /// <summary>safetensors' dtype names and the TorchSharp types they hold.</summary>
    public static readonly IReadOnlyDictionary<string, ScalarType> SafeTensors = new Dictionary<string, ScalarType>(StringComparer.Ordinal)
    {
        ["F64"] = ScalarType.Float64, ["F32"] = ScalarType.Float32, ["F16"] = ScalarType.Float16,
        ["BF16"] = ScalarType.BFloat16, ["I64"] = ScalarType.Int64, ["I32"] = ScalarType.Int32,
        ["I16"] = ScalarType.Int16, ["I8"] = ScalarType.Int8, ["U8"] = ScalarType.Byte, ["BOOL"] = ScalarType.Bool,
    };

    private static readonly Dictionary<ScalarType, string> SafeTensorsNames = SafeTensors.ToDictionary(kv => kv.Value, kv => kv.Key);

    /// <summary>The safetensors name of <paramref name="dtype"/>, or null when the format has none TorchSharp shares.</summary>
    public static string? SafeTensorsName(ScalarType dtype) => SafeTensorsNames.GetValueOrDefault(dtype);

    /// <summary>The supported safetensors names, for messages.</summary>
    public static string SafeTensorsList => string.Join(", ", SafeTensors.Keys);

    /// <summary>PyTorch's legacy storage classes (what torch.save writes for each dtype) and their dtypes.</summary>
    public static readonly IReadOnlyDictionary<string, ScalarType> TorchStorages = new Dictionary<string, ScalarType>(StringComparer.Ordinal)
    {
        ["DoubleStorage"] = ScalarType.Float64, ["FloatStorage"] = ScalarType.Float32, ["HalfStorage"] = ScalarType.Float16,
        ["BFloat16Storage"] = ScalarType.BFloat16, ["LongStorage"] = ScalarType.Int64, ["IntStorage"] = ScalarType.Int32,
        ["ShortStorage"] = ScalarType.Int16, ["CharStorage"] = ScalarType.Int8, ["ByteStorage"] = ScalarType.Byte,
        ["BoolStorage"] = ScalarType.Bool, ["ComplexFloatStorage"] = ScalarType.ComplexFloat32,
        ["ComplexDoubleStorage"] = ScalarType.ComplexFloat64,
    };

    /// <summary>The size in bytes of one element of <paramref name="dtype"/>.</summary>
    public static int ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 or ScalarType.Int64 or ScalarType.ComplexFloat32 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        ScalarType.Int8 or ScalarType.Byte or ScalarType.Bool => 1,
        ScalarType.ComplexFloat64 => 16,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "No file format of this library stores this dtype."),
    };

    /// <summary>Whether a value of <paramref name="from"/> may be copied into a tensor of <paramref name="to"/>:
    /// the same dtype, or both real floating point, or both integers, or both complex.</summary>
    public static bool Convertible(ScalarType from, ScalarType to) =>
        from == to || Kind(from) == Kind(to);

    private static char Kind(ScalarType t) => t switch
    {
        ScalarType.Float64 or ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16 => 'f',
        ScalarType.ComplexFloat32 or ScalarType.ComplexFloat64 => 'c',
        ScalarType.Bool => 'b',
        _ => 'i',
    };
}
