using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.ChannelMixers;

/// <summary>
/// flash-linear-attention's <c>GatedMLP</c> (<c>fla/modules/mlp.py</c>), the feed-forward of fla's language models,
/// with its names: <c>y = down_proj(swish(gate_proj(x)) * up_proj(x))</c>, <c>swish(u) = u sigmoid(u)</c>, no
/// biases. The same function as <see cref="SwiGLU"/>, whose names are <c>w1</c>, <c>w3</c>, <c>w2</c>.
/// <para>The intermediate width, when not given, is fla's rule: <c>int(H * hiddenRatio * 2/3)</c> rounded up to a
/// multiple of 256 (<see cref="SwiGLU.DefaultIntermediateDim"/>), with <c>hiddenRatio</c> 4 when null, as fla's
/// <c>hidden_ratio=None</c>.</para>
/// </summary>
public sealed class GatedMLP : ChannelMixer
{
    /// <summary>The gate projection <c>H -> intermediateSize</c>.</summary>
    public Linear gate_proj;

    /// <summary>The value projection <c>H -> intermediateSize</c>.</summary>
    public Linear up_proj;

    /// <summary>The output projection <c>intermediateSize -> H</c>.</summary>
    public Linear down_proj;

    /// <summary>Creates the feed-forward.</summary>
    /// <param name="hiddenSize">The feature size H (fla's <c>hidden_size</c>).</param>
    /// <param name="hiddenRatio">The nominal width as a multiple of H (fla's <c>hidden_ratio</c>; null: 4), used when
    /// <paramref name="intermediateSize"/> is null.</param>
    /// <param name="intermediateSize">The intermediate width (fla's <c>intermediate_size</c>), or null for the rule.</param>
    public GatedMLP(long hiddenSize, double? hiddenRatio = 4, long? intermediateSize = null)
        : base(nameof(GatedMLP), Check.Dim(hiddenSize), hiddenSize)
    {
        if (hiddenRatio is double r) Check.PositiveFinite(r, nameof(hiddenRatio));
        if (intermediateSize is long i) Check.AtLeast(i, 1, nameof(intermediateSize));
        IntermediateSize = intermediateSize ?? SwiGLU.DefaultIntermediateDim(hiddenSize, hiddenRatio ?? 4);
        gate_proj = nn.Linear(hiddenSize, IntermediateSize, hasBias: false);
        up_proj = nn.Linear(hiddenSize, IntermediateSize, hasBias: false);
        down_proj = nn.Linear(IntermediateSize, hiddenSize, hasBias: false);
        RegisterComponents();
    }

    /// <summary>The intermediate width.</summary>
    public long IntermediateSize { get; }

    /// <inheritdoc />
    protected override Tensor Mix(Tensor x) => down_proj.forward(nn.functional.silu(gate_proj.forward(x)) * up_proj.forward(x));
}
