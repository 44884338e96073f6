using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.Heads;

/// <summary>
/// Base of the heads: with <c>reduce</c>, the mean over time, then a linear map with bias and the head's output
/// function: <c>[B, L, H] -> [B, outFeatures]</c> (unbatched <c>[L, H] -> [outFeatures]</c>); without it, one
/// output per step, <c>[B, L, outFeatures]</c> (or <c>[L, outFeatures]</c>). The head computes in the dtype of its
/// linear map (docs/architecture.md, "Dtypes"); the output has the input's dtype.
/// </summary>
/// <remarks>
/// A head also streams (<see cref="IStreamingModule"/>, so a <see cref="Models.SequenceNetwork"/> streams through it):
/// per step it needs no state (an <see cref="EmptyState"/>); pooling, it carries a <see cref="PoolingState"/> (the
/// running sum and step count) and returns, for each piece, the output for the mean over every step so far, so the
/// last piece's output equals the full forward's.
/// </remarks>
public abstract class SequenceHead : nn.Module<Tensor, Tensor>, IStreamingModule
{
    /// <summary>The linear map <c>inFeatures -> outFeatures</c> (with bias).</summary>
    public Linear linear;

    /// <summary>Creates the head.</summary>
    /// <param name="name">The module name.</param>
    /// <param name="inFeatures">The model's feature size H.</param>
    /// <param name="outFeatures">The number of outputs (classes).</param>
    /// <param name="reduce">Mean over time before the linear map.</param>
    protected SequenceHead(string name, long inFeatures, long outFeatures, bool reduce) : base(name)
    {
        Check.AtLeast(inFeatures, 1);
        Check.AtLeast(outFeatures, 1);
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Reduce = reduce;
        linear = nn.Linear(inFeatures, outFeatures, hasBias: true);
    }

    /// <summary>The model's feature size H.</summary>
    public long InFeatures { get; }

    /// <summary>The number of outputs.</summary>
    public long OutFeatures { get; }

    /// <summary>Whether the head averages over time.</summary>
    public bool Reduce { get; }

    /// <summary>Computes the outputs.</summary>
    /// <param name="x">Model output <c>[B, L, H]</c> or <c>[L, H]</c>, real floating point, B and L at least 1.</param>
    /// <returns><c>[B, outFeatures]</c> (or <c>[outFeatures]</c>) with <c>reduce</c>, otherwise <c>[B, L, outFeatures]</c> (or <c>[L, outFeatures]</c>).</returns>
    public override Tensor forward(Tensor x) =>
        Precision.ComputeSequence(this, x, InFeatures, batched => Output(linear.forward(Reduce ? batched.mean(new long[] { 1 }) : batched)));

    /// <summary>
    /// Computes the outputs of a right-padded batch: with <c>reduce</c>, the mean over each sequence's valid steps;
    /// without it, per step, zeros at padded steps.
    /// </summary>
    /// <param name="x">Model output <c>[B, L, H]</c> or <c>[L, H]</c>.</param>
    /// <param name="lengths">Integer <c>[B]</c> (<c>[1]</c> unbatched), <c>1 &lt;= lengths[b] &lt;= L</c>, on x's device; or null.</param>
    public Tensor forward(Tensor x, Tensor? lengths)
    {
        if (lengths is null) return forward(x);
        return Precision.ComputeSequence(this, x, InFeatures, batched =>
        {
            var valid = SequenceLengths.Validate(lengths, batched.shape[0], batched.shape[1], batched.device, nameof(lengths));
            var mask = SequenceLengths.Mask(valid, batched.shape[1]).unsqueeze(-1);                  // [B, L, 1]
            var zero = zeros(1, dtype: batched.dtype, device: batched.device);
            if (!Reduce) return where(mask, Output(linear.forward(batched)), zero);
            var mean = where(mask, batched, zero).sum(1) / valid.unsqueeze(1).to_type(batched.dtype);
            return Output(linear.forward(mean));
        });
    }

    /// <inheritdoc />
    public (Tensor Output, StreamingState State) Stream(Tensor x, StreamingState? state = null) => Stream(x, state, null);

    /// <inheritdoc />
    /// <remarks>Per step the state is an <see cref="EmptyState"/>; pooling, a <see cref="PoolingState"/> with the running
    /// sum and count of the valid steps so far, and the output is the head of their mean.</remarks>
    public (Tensor Output, StreamingState State) Stream(Tensor x, StreamingState? state, Tensor? lengths)
    {
        var (_, unbatched) = Check.Sequence(x, InFeatures, nameof(x));
        long batch = unbatched ? 1 : x.shape[0], length = unbatched ? x.shape[0] : x.shape[1];
        var dtype = Precision.ComputeDType(this, x.dtype);
        string name = $"{GetType().Name}(inFeatures: {InFeatures}, reduce: {Reduce})";
        if (state is not null)
        {
            state.CheckCompatible(batch, x.device, dtype, nameof(state));
            if (Reduce) StreamingState.Expect<PoolingState>(state, name).Validate(InFeatures, name);
            else StreamingState.Expect<EmptyState>(state, name);
        }
        var valid = lengths is null ? null : SequenceLengths.Validate(lengths, batch, length, x.device, nameof(lengths));
        if (!Reduce) return (forward(x, valid), new EmptyState(batch, x.device, dtype));
        using var scope = NewDisposeScope();
        var previous = (PoolingState?)state;
        var xb = unbatched ? x.unsqueeze(0) : x;
        var wide = Precision.StateDType(dtype);
        var xw = xb.to_type(wide);
        if (valid is not null)
            xw = where(SequenceLengths.Mask(valid, length).unsqueeze(-1), xw, zeros(1, dtype: wide, device: x.device));
        var sum = xw.sum(1);                                                   // [B, H]
        var count = valid ?? full(batch, length, dtype: ScalarType.Int64, device: x.device);
        if (previous is not null)
        {
            sum = sum + previous.Sum;
            count = count + previous.Count;
        }
        var mean = (sum / count.unsqueeze(1).to_type(wide)).unsqueeze(1);      // [B, 1, H]: the mean over every valid step so far
        var y = forward(unbatched ? mean.squeeze(0) : mean);
        var next = new PoolingState(sum, count, dtype);
        next.MoveToOuterDisposeScope();
        return (y.MoveToOuterDisposeScope(), next);
    }

    /// <summary>The output function applied to the linear map's result (over its last dimension).</summary>
    /// <param name="logits">The linear map's output <c>[..., outFeatures]</c>.</param>
    protected abstract Tensor Output(Tensor logits);
}
