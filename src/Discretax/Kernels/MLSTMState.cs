using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Kernels;

/// <summary>
/// The recurrent state of the mLSTM cell (Beck et al. 2024, https://arxiv.org/abs/2405.04517) after some step
/// t: the stabilized matrix memory <c>C</c>, the stabilized normalizer <c>n</c> and the log-space stabilizer
/// <c>m</c>, one of each per batch element and head. The true (unstabilized) memory and normalizer are
/// <c>C * exp(m)</c> and <c>n * exp(m)</c>; see <see cref="MLSTMKernel"/> for the recurrence.
/// </summary>
/// <remarks>
/// The tensors are stored under the names <c>"C"</c>, <c>"n"</c> and <c>"m"</c> of
/// <see cref="StreamingState.Tensors"/> and exposed as <see cref="C"/>, <see cref="N"/> and <see cref="M"/>
/// (C# property names are capitalized; <see cref="N"/> is the paper's normalizer <c>n</c>, <see cref="M"/>
/// its stabilizer <c>m</c>). The state owns its tensors: disposing it disposes them. States returned by
/// <see cref="MLSTMKernel"/> hold float64 tensors for float64 inputs and float32 tensors otherwise.
/// </remarks>
public sealed class MLSTMState : StreamingState
{
    /// <summary>Creates a state that owns <paramref name="c"/>, <paramref name="n"/> and <paramref name="m"/>.</summary>
    /// <param name="c">The stabilized memory <c>C</c>, shape <c>[B, NH, Dk, Dv]</c>.</param>
    /// <param name="n">The stabilized normalizer <c>n</c>, shape <c>[B, NH, Dk]</c>.</param>
    /// <param name="m">The stabilizer <c>m</c> (log scale), shape <c>[B, NH]</c>.</param>
    /// <param name="dtype">The dtype of the sequence the state was computed from; defaults to <paramref name="c"/>'s dtype.</param>
    /// <exception cref="ArgumentException">A tensor is not real floating point, has the wrong rank, its sizes
    /// disagree with the others, or it lives on another device.</exception>
    public MLSTMState(Tensor c, Tensor n, Tensor m, ScalarType? dtype = null)
        : base(Validate(c, n, m), c.device, dtype ?? c.dtype,
            new[]
            {
                new KeyValuePair<string, Tensor>("C", c),
                new KeyValuePair<string, Tensor>("n", n),
                new KeyValuePair<string, Tensor>("m", m),
            })
    {
    }

    /// <summary>The stabilized matrix memory <c>C</c>, shape <c>[B, NH, Dk, Dv]</c>.</summary>
    public Tensor C => this["C"];

    /// <summary>The stabilized normalizer <c>n</c>, shape <c>[B, NH, Dk]</c>.</summary>
    public Tensor N => this["n"];

    /// <summary>The stabilizer <c>m</c> (log scale), shape <c>[B, NH]</c>.</summary>
    public Tensor M => this["m"];

    /// <summary>The number of heads NH.</summary>
    public long NumHeads => C.shape[1];

    /// <summary>The key (and query) dimension Dk.</summary>
    public long KeyDim => C.shape[2];

    /// <summary>The value dimension Dv.</summary>
    public long ValueDim => C.shape[3];

    /// <summary>Returns a copy of this state on <paramref name="device"/>; this state is left as it is.</summary>
    /// <param name="device">The target device.</param>
    public override MLSTMState To(Device device) => new(C.to(device), N.to(device), M.to(device), DType);

    /// <summary>Returns a copy whose tensors are detached from the autograd graph (for truncated BPTT).</summary>
    public override MLSTMState Detach() => new(C.detach(), N.detach(), M.detach(), DType);

    private static long Validate(Tensor c, Tensor n, Tensor m)
    {
        ArgumentNullException.ThrowIfNull(c);
        ArgumentNullException.ThrowIfNull(n);
        ArgumentNullException.ThrowIfNull(m);
        Check.RealFloating(c, nameof(c));
        Check.RealFloating(n, nameof(n));
        Check.RealFloating(m, nameof(m));
        Check.Rank(c, 4, "C [B, NH, Dk, Dv]", nameof(c));
        Check.Rank(n, 3, "n [B, NH, Dk]", nameof(n));
        Check.Rank(m, 2, "m [B, NH]", nameof(m));
        long b = c.shape[0], nh = c.shape[1], dk = c.shape[2];
        if (b < 1 || nh < 1 || dk < 1 || c.shape[3] < 1)
            throw new ArgumentException($"Expected C [B, NH, Dk, Dv] with every size at least 1; got shape {Check.Shape(c)}.", nameof(c));
        if (n.shape[0] != b || n.shape[1] != nh || n.shape[2] != dk)
            throw new ArgumentException($"Expected n of shape [{b}, {nh}, {dk}] to match C {Check.Shape(c)}; got shape {Check.Shape(n)}.", nameof(n));
        if (m.shape[0] != b || m.shape[1] != nh)
            throw new ArgumentException($"Expected m of shape [{b}, {nh}] to match C {Check.Shape(c)}; got shape {Check.Shape(m)}.", nameof(m));
        if (n.device_type != c.device_type || n.device_index != c.device_index)
            throw new ArgumentException($"Expected n on C's device {c.device}; got {n.device}.", nameof(n));
        if (m.device_type != c.device_type || m.device_index != c.device_index)
            throw new ArgumentException($"Expected m on C's device {c.device}; got {m.device}.", nameof(m));
        return b;
    }
}
