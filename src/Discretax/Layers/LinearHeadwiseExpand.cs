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
/// It computes in the dtype of its weight (docs/architecture.md, "Dtypes"); the output has the input's dtype.
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
        Check.AtLeast(outF, 1, nameof(outFeatures));
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
    /// <param name="x">Input <c>[..., inFeatures]</c>, real floating point, no empty dimension.</param>
    /// <returns>Output <c>[..., outFeatures]</c> in <paramref name="x"/>'s dtype.</returns>
    public override Tensor forward(Tensor x)
    {
        Check.PerPosition(x, InFeatures);
        return Precision.Compute(this, x, xc =>
        {
            var xh = xc.reshape(-1, NumHeads, InFeatures / NumHeads);             // [N, H, in/H]
            var y = einsum("nhd,hod->nho", xh, weight);                           // [N, H, out/H]
            y = y.reshape(xc.shape[..^1].Append(OutFeatures).ToArray());
            return bias is null ? y : y + bias;
        });
    }
}
