using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Utilities;

/// <summary>
/// The library's one dtype rule (docs/architecture.md, "Dtypes"): a module computes in the dtype of its parameters
/// (its <em>compute dtype</em>); an input of another floating dtype is cast to it on entry, and the output is cast
/// back to the input's dtype. A module without floating parameters computes in the input's dtype. Recurrent states
/// and gate statistics are kept in float32 at least (float64 for a float64 module), whatever the compute dtype.
/// </summary>
internal static class Precision
{
    /// <summary>The dtype of the first floating-point parameter of <paramref name="module"/> (recursively), or null.</summary>
    public static ScalarType? ParameterDType(nn.Module module)
    {
        foreach (var p in module.parameters())
            if (Check.IsRealFloating(p.dtype)) return p.dtype;
        return null;
    }

    /// <summary>The compute dtype of <paramref name="module"/> for an input of <paramref name="inputDType"/>.</summary>
    public static ScalarType ComputeDType(nn.Module module, ScalarType inputDType) =>
        ParameterDType(module) ?? inputDType;

    /// <summary>The dtype recurrent states are kept in for a computation in <paramref name="compute"/>: float64 for
    /// float64, float32 otherwise.</summary>
    public static ScalarType StateDType(ScalarType compute) =>
        compute == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;

    /// <summary>The complex dtype matching <see cref="StateDType"/>.</summary>
    public static ScalarType ComplexStateDType(ScalarType compute) =>
        compute == ScalarType.Float64 ? ScalarType.ComplexFloat64 : ScalarType.ComplexFloat32;

    /// <summary><paramref name="x"/> in <paramref name="dtype"/> (the tensor itself when it already is).</summary>
    public static Tensor As(Tensor x, ScalarType dtype) => x.dtype == dtype ? x : x.to_type(dtype);
}
