using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.Layers;

/// <summary>
/// A block-diagonal ("head-wise") linear map, as xLSTM's <c>LinearHeadwiseExpand</c>: the <c>inFeatures</c> input
/// features are split into <c>numHeads</c> consecutive groups of <c>inFeatures / numHeads</c>, and each group is
/// mapped by its own matrix to <c>outFeatures / numHeads</c> outputs:
/// <c>y[..., h, o] = sum_d weight[h, o, d] * x[..., h, d] (+ bias[h * outPerHead + o])</c>.
/// With <c>numHeads = 1</c> it is an ordinary linear map; with <c>numHeads = inFeatures</c> every feature is mapped
/// on its own. The mLSTM layer uses it for its q, k and v projections (blocks of <c>qkvProjBlocksize</c> features).
/// </summary>
/// <remarks>The weight layout <c>[numHeads, outPerHead, inPerHead]</c> and the names <c>weight</c> / <c>bias</c>
/// are those of NX-AI xlstm's PyTorch module (xlstm-jax calls the weight <c>kernel</c>, same layout).</remarks>
public sealed class LinearHeadwiseExpand : nn.Module<Tensor, Tensor>
{
    /// <summary>The per-head matrices <c>[numHeads, outFeatures / numHeads, inFeatures / numHeads]</c>.</summary>
    public Parameter weight;

    /// <summary>The bias <c>[outFeatures]</c>, when <c>useBias</c>.</summary>
    public Parameter? bias;

    /// <summary>Creates the map. The weight is drawn from <c>N(0, 2 / (5 inPerHead))</c> (xLSTM's small init of a
    /// head's fan-in) and the bias is zero; owners usually re-initialize the weight.</summary>
    /// <param name="inFeatures">The input size (a multiple of <paramref name="numHeads"/>).</param>
    /// <param name="numHeads">The number of diagonal blocks (at least 1, at most <paramref name="inFeatures"/>).</param>
    /// <param name="outFeatures">The output size (a multiple of <paramref name="numHeads"/>; default <paramref name="inFeatures"/>).</param>
    /// <param name="useBias">Whether to add a bias.</param>
    public LinearHeadwiseExpand(long inFeatures, long numHeads, long? outFeatures = null, bool useBias = false)
        : base(nameof(LinearHeadwiseExpand))
    {
        Check.AtLeast(inFeatures, 1);
        Check.AtLeast(numHeads, 1);
        long outF = outFeatures ?? inFeatures;
        if (outF < 1) throw new ArgumentOutOfRangeException(nameof(outFeatures), outF, $"Expected at least 1 output feature; got {outF}.");
        if (numHeads > inFeatures || inFeatures % numHeads != 0)
            throw new ArgumentException($"Expected inFeatures ({inFeatures}) to be a multiple of numHeads; got numHeads = {numHeads}.", nameof(numHeads));
        if (outF % numHeads != 0)
            throw new ArgumentException($"Expected outFeatures to be a multiple of numHeads ({numHeads}); got {outF}.", nameof(outFeatures));
        InFeatures = inFeatures;
        OutFeatures = outF;
        NumHeads = numHeads;
        long inPer = inFeatures / numHeads;
        weight = nn.Parameter(empty(numHeads, outF / numHeads, inPer).normal_(0, Math.Sqrt(2.0 / (5.0 * inPer))));
        if (useBias) bias = nn.Parameter(zeros(outF));
        RegisterComponents();
    }

    /// <summary>The input size.</summary>
    public long InFeatures { get; }

    /// <summary>The output size.</summary>
    public long OutFeatures { get; }

    /// <summary>The number of diagonal blocks.</summary>
    public long NumHeads { get; }

    /// <summary>Applies the map to the last dimension.</summary>
    /// <param name="x">Input <c>[..., inFeatures]</c>.</param>
    /// <returns>Output <c>[..., outFeatures]</c> in <paramref name="x"/>'s dtype.</returns>
    public override Tensor forward(Tensor x)
    {
        Check.Features(x, InFeatures);
        using var scope = NewDisposeScope();
        var lead = x.shape[..^1];
        var xh = x.reshape(-1, NumHeads, InFeatures / NumHeads);                  // [N, H, in/H]
        var y = einsum("nhd,hod->nho", xh, weight.to(x.dtype));                  // [N, H, out/H]
        var shape = lead.Append(OutFeatures).ToArray();
        y = y.reshape(shape);
        if (bias is not null) y = y + bias.to(x.dtype);
        return y.MoveToOuterDisposeScope();
    }
}
