using System.Runtime.CompilerServices;
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
    /// <summary>The first floating-point parameter of <paramref name="module"/> (recursively), or null.</summary>
    public static Tensor? FloatingParameter(nn.Module module)
    {
        foreach (var p in module.parameters())
            if (Check.IsRealFloating(p.dtype)) return p;
        return null;
    }

    /// <summary>The dtype of the first floating-point parameter of <paramref name="module"/> (recursively), or null.</summary>
    public static ScalarType? ParameterDType(nn.Module module) => FloatingParameter(module)?.dtype;

    /// <summary>The compute dtype of <paramref name="module"/> for an input of <paramref name="inputDType"/>.</summary>
    public static ScalarType ComputeDType(nn.Module module, ScalarType inputDType) =>
        ParameterDType(module) ?? inputDType;

    /// <summary>The dtype recurrent states are kept in for a computation in <paramref name="compute"/>: float64 for
    /// float64, float32 otherwise.</summary>
    public static ScalarType StateDType(ScalarType compute) =>
        compute == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;

    /// <summary>The dtype a kernel computes and keeps its state in for these inputs: float64 if any is float64, else
    /// float32 (so float16 / bfloat16 inputs compute in float32).</summary>
    public static ScalarType StateDType(params Tensor[] inputs) =>
        inputs.Any(t => t.dtype == ScalarType.Float64) ? ScalarType.Float64 : ScalarType.Float32;

    /// <summary>The complex dtype matching <see cref="StateDType(ScalarType)"/>.</summary>
    public static ScalarType ComplexStateDType(ScalarType compute) =>
        compute == ScalarType.Float64 ? ScalarType.ComplexFloat64 : ScalarType.ComplexFloat32;

    /// <summary><paramref name="x"/> in <paramref name="dtype"/> (the tensor itself when it already is).</summary>
    public static Tensor As(Tensor x, ScalarType dtype) => x.dtype == dtype ? x : x.to_type(dtype);

    /// <summary>
    /// Runs a module's computation under the dtype rule, inside a dispose scope from which only the result moves
    /// out: <paramref name="x"/> (already validated as real floating point) is cast to the module's compute dtype,
    /// <paramref name="compute"/> runs on it, and its result is cast back to <paramref name="x"/>'s dtype. The result
    /// is never the object <paramref name="x"/> (an identity gives <c>x.alias()</c>, a new handle on the same
    /// storage), so <c>Sequential</c> may dispose it. A module with floating parameters refuses an input on
    /// another device with an <see cref="ArgumentException"/> naming <paramref name="paramName"/>.
    /// </summary>
    /// <param name="module">The module whose parameters set the compute dtype.</param>
    /// <param name="x">The validated input.</param>
    /// <param name="compute">The computation, on the input in the compute dtype.</param>
    /// <param name="paramName">The input's name in errors (the caller's argument).</param>
    public static Tensor Compute(nn.Module module, Tensor x, Func<Tensor, Tensor> compute,
        [CallerArgumentExpression(nameof(x))] string? paramName = null)
    {
        var parameter = FloatingParameter(module);
        if (parameter is not null) Check.SameDevice(parameter, x, "the module's parameters", paramName);
        using var scope = NewDisposeScope();
        var y = As(compute(As(x, parameter?.dtype ?? x.dtype)), x.dtype);
        if (ReferenceEquals(y, x)) y = x.alias();
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <see cref="Compute"/> for a sequence input: validates <paramref name="x"/> as <c>[B, L, features]</c> or
    /// unbatched <c>[L, features]</c> (<see cref="Check.Sequence"/>), runs <paramref name="batched"/> on the batched
    /// form <c>[B, L, features]</c> in the compute dtype and removes the batch dimension again for an unbatched
    /// input.
    /// </summary>
    /// <param name="module">The module whose parameters set the compute dtype.</param>
    /// <param name="x">The input.</param>
    /// <param name="features">The expected feature size.</param>
    /// <param name="batched">The computation on <c>[B, L, features]</c>; its result's first dimension is the batch.</param>
    /// <param name="paramName">The input's name in errors (the caller's argument).</param>
    public static Tensor ComputeSequence(nn.Module module, Tensor x, long features, Func<Tensor, Tensor> batched,
        [CallerArgumentExpression(nameof(x))] string? paramName = null)
    {
        bool unbatched = Check.SequenceShape(x, features, paramName);
        return Compute(module, x, xc => unbatched ? batched(xc.unsqueeze(0)).squeeze(0) : batched(xc), paramName);
    }
}
