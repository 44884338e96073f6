using Discretax.Layers;
using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Blocks;

/// <summary>The one norm factory of the blocks and models: a <see cref="NormKind"/> to its module, and how it is applied.</summary>
public static class Norms
{
    /// <summary>A new norm module of <paramref name="kind"/> over <paramref name="features"/> features.</summary>
    /// <param name="kind">The norm kind.</param>
    /// <param name="features">The feature size H.</param>
    /// <param name="eps">The norm's eps (positive, finite), or null for the kind's default (<see cref="DefaultEps"/>:
    /// 1e-5, 1e-6 for <see cref="NormKind.Rms"/>).</param>
    public static nn.Module<Tensor, Tensor> Create(NormKind kind, long features, double? eps = null)
    {
        Check.Defined(kind);
        Check.AtLeast(features, 1);
        if (eps is double e) Check.PositiveFinite(e, nameof(eps));
        double value = eps ?? DefaultEps(kind);
        return kind switch
        {
            NormKind.Batch => nn.BatchNorm1d(features, eps: value, momentum: 0.01, affine: false, track_running_stats: true),
            NormKind.EquinoxBatch => new EquinoxBatchNorm(features, value),
            NormKind.Layer => nn.LayerNorm(features, eps: value),
            NormKind.XLSTMLayer => nn.LayerNorm(features, eps: value, elementwise_affine: true, bias: false),
            _ => new RMSNorm(features, value),
        };
    }

    /// <summary>The eps of <paramref name="kind"/> when none is given: 1e-6 for <see cref="NormKind.Rms"/>, else 1e-5.</summary>
    /// <param name="kind">The norm kind.</param>
    public static double DefaultEps(NormKind kind) => kind == NormKind.Rms ? 1e-6 : 1e-5;

    /// <summary>
    /// <paramref name="norm"/> over the last axis of <paramref name="x"/>. Batch norm (both kinds) sees the input as
    /// <c>[B * L, H]</c> rows (a view of a contiguous input): the same statistics per channel over batch and time as
    /// <c>BatchNorm1d</c> on <c>[B, H, L]</c>, but over contiguous memory (about 4x faster forward+backward at
    /// <c>[64, 784, 64]</c>, docs/benchmarks.md "Pixels-layout layer costs").
    /// </summary>
    /// <param name="kind">The norm kind of <paramref name="norm"/>.</param>
    /// <param name="norm">The norm module.</param>
    /// <param name="x">The input <c>[B, L, H]</c> (any <c>[..., H]</c> without <paramref name="valid"/>).</param>
    /// <param name="valid">For a right-padded batch, the valid steps <c>bool [B, L]</c>: batch norm in training then
    /// normalizes with, and updates its running statistics from, the valid rows only (padded rows come out as zeros);
    /// every other norm acts per position and ignores it.</param>
    internal static Tensor Apply(this NormKind kind, nn.Module<Tensor, Tensor> norm, Tensor x, Tensor? valid = null)
    {
        if (kind is not (NormKind.Batch or NormKind.EquinoxBatch)) return norm.forward(x);
        var rows = x.reshape(-1, x.shape[^1]);
        if (valid is null || !norm.training) return norm.forward(rows).reshape(x.shape);
        var index = valid.reshape(-1).nonzero().squeeze(1);
        var normalized = norm.forward(rows.index_select(0, index));
        return zeros_like(rows).index_copy(0, index, normalized).reshape(x.shape);
    }
}
