using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Streaming;

/// <summary>
/// Base of every module that maps a sequence to a sequence (mixers, blocks, models), and the library's one
/// streaming template (docs/architecture.md, "Streaming"): a subclass implements
/// <see cref="Run(Tensor, StreamingState?, bool, Tensor?)"/> once; <see cref="forward(Tensor)"/> is <c>Run(x, null, false, null)</c>
/// and <see cref="Stream(Tensor, StreamingState?)"/> is <c>Run(x, state, true, null)</c> (with a right-padded batch, the
/// lengths instead of the last null). The base validates the input (batch-first
/// <c>[B, L, H]</c> or unbatched <c>[L, H]</c>), applies the dtype rule (the input is cast to the module's compute
/// dtype, the output back to the input's dtype), checks a given state (batch size, device, dtype, then the module's
/// own <see cref="CheckState"/>) before any computation, and runs everything inside a dispose scope, moving only
/// the results out. It never returns its input tensor object (<c>torch.nn.Sequential</c> disposes intermediates).
/// </summary>
public abstract class SequenceModule : nn.Module<Tensor, Tensor>, IStreamingModule
{
    /// <summary>Creates the module.</summary>
    /// <param name="name">The module's name.</param>
    /// <param name="inFeatures">The feature size H of its input (at least 1; a subclass validates it under its own
    /// parameter name before calling this constructor, so the error names the argument its caller wrote).</param>
    protected SequenceModule(string name, long inFeatures) : base(name)
    {
        Check.AtLeast(inFeatures, 1);
        InFeatures = inFeatures;
    }

    /// <summary>The feature size H of the input.</summary>
    public long InFeatures { get; }

    /// <summary>Maps <c>[B, L, H]</c> (or unbatched <c>[L, H]</c>) to the output sequence.</summary>
    /// <param name="x">Input sequence, <c>[B, L, H]</c> or <c>[L, H]</c>, any real floating dtype (cast to the
    /// module's compute dtype; the output has <paramref name="x"/>'s dtype).</param>
    public override Tensor forward(Tensor x) => forward(x, null);

    /// <summary>
    /// Maps a right-padded batch to the output sequence: sequence b is <c>x[b, :lengths[b]]</c>. The outputs at
    /// <c>t &lt; lengths[b]</c> are those of sequence b run alone; the outputs at padded steps are zero; nothing a
    /// padded step holds changes a valid output (docs/variable-length.md).
    /// </summary>
    /// <param name="x">Input <c>[B, L, H]</c> or <c>[L, H]</c>.</param>
    /// <param name="lengths">The sequences' lengths, integer <c>[B]</c> (<c>[1]</c> for unbatched input) on
    /// <paramref name="x"/>'s device, <c>1 &lt;= lengths[b] &lt;= L</c>; null for a batch without padding.</param>
    public Tensor forward(Tensor x, Tensor? lengths)
    {
        using var scope = NewDisposeScope();
        var (batched, unbatched, input) = Prepare(x);
        var (masked, valid, mask) = ApplyLengths(input, lengths);
        var (y, state) = Run(masked, null, false, valid);
        state?.Dispose();
        return Finish(MaskOutput(y, mask), x, batched, unbatched).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public (Tensor Output, StreamingState State) Stream(Tensor x, StreamingState? state = null) => Stream(x, state, null);

    /// <inheritdoc />
    public (Tensor Output, StreamingState State) Stream(Tensor x, StreamingState? state, Tensor? lengths)
    {
        using var scope = NewDisposeScope();
        var (batched, unbatched, input) = Prepare(x);
        if (state is not null)
        {
            state.CheckCompatible(input.shape[0], input.device, input.dtype, nameof(state));
            CheckState(state);
        }
        var (masked, valid, mask) = ApplyLengths(input, lengths);
        var (y, next) = Run(masked, state, true, valid);
        if (next is null)
            throw new InvalidOperationException($"{GetType().Name}.Run returned no state although returnState was true.");
        if (ReferenceEquals(next, state))
            throw new InvalidOperationException($"{GetType().Name}.Run returned its input state; it must return a new one.");
        var output = Finish(MaskOutput(y, mask), x, batched, unbatched).MoveToOuterDisposeScope();
        next.MoveToOuterDisposeScope();
        return (output, next);
    }

    /// <summary>
    /// Runs packed sequences (flash-linear-attention's <c>cu_seqlens</c>): N sequences concatenated along time in one
    /// row, <c>x [1, T, H]</c> (or <c>[T, H]</c>), sequence n at steps <c>cuSeqlens[n] .. cuSeqlens[n + 1] - 1</c>;
    /// each starts from a fresh state. Returns the outputs in the same packed layout, equal to each sequence run alone.
    /// At module level the sequences run as one right-padded batch with their lengths (exact; the padding's compute
    /// is spent); the kernels also take packed input directly.
    /// </summary>
    /// <param name="x">The packed input, <c>[1, T, H]</c> or <c>[T, H]</c>.</param>
    /// <param name="cuSeqlens">The cumulative boundaries, int64 <c>[N + 1]</c>: 0, then strictly increasing, ending at T.</param>
    public Tensor ForwardPacked(Tensor x, Tensor cuSeqlens)
    {
        using var scope = NewDisposeScope();
        var (y, state) = Packed(x, cuSeqlens, null, false);
        state?.Dispose();
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Streams packed sequences: as <see cref="ForwardPacked"/>, continuing sequence n from <paramref name="state"/>'s
    /// n-th entry (a state of batch size N, e.g. returned by an earlier call), and returning the state after each
    /// sequence's last step, batch size N.
    /// </summary>
    /// <param name="x">The packed input, <c>[1, T, H]</c> or <c>[T, H]</c>.</param>
    /// <param name="cuSeqlens">The cumulative boundaries, int64 <c>[N + 1]</c>.</param>
    /// <param name="state">A state of batch size N to continue the sequences from, or null for fresh states.</param>
    public (Tensor Output, StreamingState State) StreamPacked(Tensor x, Tensor cuSeqlens, StreamingState? state = null)
    {
        using var scope = NewDisposeScope();
        var (y, next) = Packed(x, cuSeqlens, state, true);
        if (next is null) throw new InvalidOperationException($"{GetType().Name}.RunPacked returned no state although returnState was true.");
        var output = y.MoveToOuterDisposeScope();
        next.MoveToOuterDisposeScope();
        return (output, next);
    }

    /// <summary>
    /// The module's own computation on packed sequences, or null when it has none (then the base runs them as one
    /// right-padded batch with their lengths, which is exact but spends the padding's compute). Runs inside a dispose
    /// scope on a validated <c>x [1, T, H]</c> (the module's layout) in the compute dtype, with validated boundaries
    /// and a state (batch N) already checked; returns the packed output and, when <paramref name="returnState"/>, the
    /// state after each sequence's last step.
    /// </summary>
    /// <param name="x">The packed input, batch 1.</param>
    /// <param name="cuSeqlens">The boundaries, int64 <c>[N + 1]</c> on x's device.</param>
    /// <param name="state">The state of the N sequences to continue, or null.</param>
    /// <param name="returnState">Whether to build and return the final states.</param>
    protected virtual (Tensor Output, StreamingState? State)? RunPacked(Tensor x, Tensor cuSeqlens, StreamingState? state, bool returnState) => null;

    /// <summary>Runs <paramref name="child"/> on packed sequences as <see cref="RunPacked"/> would (for blocks and models).</summary>
    /// <param name="child">The inner sequence module.</param>
    /// <param name="x">Its packed input.</param>
    /// <param name="cuSeqlens">The boundaries.</param>
    /// <param name="state">Its state (batch N), or null.</param>
    /// <param name="returnState">Whether its final states are wanted.</param>
    protected static (Tensor Output, StreamingState? State) RunChildPacked(SequenceModule child, Tensor x, Tensor cuSeqlens,
        StreamingState? state, bool returnState)
    {
        if (state is null && !returnState) return (child.ForwardPacked(x, cuSeqlens), null);
        var (y, next) = child.StreamPacked(x, cuSeqlens, state);
        if (returnState) return (y, next);
        next.Dispose();
        return (y, null);
    }

    private (Tensor Output, StreamingState? State) Packed(Tensor x, Tensor cuSeqlens, StreamingState? state, bool returnState)
    {
        var (batched, unbatched, input) = Prepare(x);
        if (batched.shape[0] != 1)
            throw new ArgumentException($"Expected packed sequences in one row (batch 1); got shape {Check.Shape(x)}.", nameof(x));
        var lengths = PackedLengths(cuSeqlens, input.shape[TimeDim], input.device);
        if (state is not null)
        {
            state.CheckCompatible(lengths.shape[0], input.device, input.dtype, nameof(state));
            CheckState(state);
        }
        Tensor y;
        StreamingState? next;
        if (RunPacked(input, cuSeqlens, state, returnState) is { } native)
            (y, next) = native;
        else
        {
            var padded = Unpack(input, cuSeqlens, lengths);
            if (state is null && !returnState) (y, next) = (forward(padded, lengths), null);
            else (y, next) = Stream(padded, state, lengths);
            y = Repack(y, lengths);
        }
        if (returnState && next is null)
            throw new InvalidOperationException($"{GetType().Name}.RunPacked returned no state although returnState was true.");
        return (Finish(y, x, batched, unbatched), next);
    }

    // Packed [1, T, H] (time in TimeDim) -> padded [N, maxLen, H] (same layout).
    private Tensor Unpack(Tensor batched, Tensor cuSeqlens, Tensor lengths)
    {
        long total = batched.shape[TimeDim], n = lengths.shape[0], longest = lengths.max().item<long>();
        var starts = cuSeqlens.narrow(0, 0, n);
        var index = (starts.unsqueeze(1) + arange(longest, dtype: ScalarType.Int64, device: batched.device).unsqueeze(0)).clamp_max(total - 1); // [N, maxLen]
        var timeFirst = TimeDim == 1 ? batched[0] : batched[0].transpose(0, 1);                    // [T, H]
        var padded = timeFirst.index_select(0, index.reshape(-1)).view(n, longest, -1);             // [N, maxLen, H]
        return TimeDim == 1 ? padded : padded.transpose(1, 2);
    }

    // Padded [N, maxLen, H'] (module layout) -> packed [1, T, H'].
    private Tensor Repack(Tensor y, Tensor lengths)
    {
        var timeFirst = TimeDim == 1 ? y : y.transpose(1, 2);                                        // [N, maxLen, H']
        var packed = timeFirst[SequenceLengths.Mask(lengths, timeFirst.shape[1])];                  // [T, H'], sequences in order
        return (TimeDim == 1 ? packed : packed.transpose(0, 1)).unsqueeze(0);
    }

    private static Tensor PackedLengths(Tensor cuSeqlens, long total, Device device)
    {
        ArgumentNullException.ThrowIfNull(cuSeqlens);
        if (cuSeqlens.dtype != ScalarType.Int64 || cuSeqlens.dim() != 1 || cuSeqlens.shape[0] < 2)
            throw new ArgumentException($"Expected cuSeqlens as int64 [N + 1] with N >= 1; got {cuSeqlens.dtype} of shape {Check.Shape(cuSeqlens)}.", nameof(cuSeqlens));
        if (!Check.SameDevice(cuSeqlens.device, device))
            throw new ArgumentException($"Expected cuSeqlens on the input's device {device}; got {cuSeqlens.device}.", nameof(cuSeqlens));
        long first = cuSeqlens[0].item<long>(), last = cuSeqlens[-1].item<long>();
        var lengths = cuSeqlens.narrow(0, 1, cuSeqlens.shape[0] - 1) - cuSeqlens.narrow(0, 0, cuSeqlens.shape[0] - 1);
        if (first != 0 || last != total || lengths.min().item<long>() < 1)
            throw new ArgumentException($"Expected cuSeqlens to start at 0, increase strictly and end at T = {total}; got [{string.Join(", ", cuSeqlens.cpu().data<long>().ToArray())}].", nameof(cuSeqlens));
        return lengths;
    }

    /// <summary>
    /// The computation on a validated batch <c>[B, L, H]</c> in the compute dtype; runs inside a dispose scope.
    /// Continues from <paramref name="state"/> (null: a new sequence) and, when <paramref name="returnState"/>,
    /// returns the state after the last step (a new state; <paramref name="state"/> stays unchanged). Without
    /// <paramref name="returnState"/> it returns null and builds no state.
    /// <para>With <paramref name="lengths"/>, the batch is right-padded: the base has already zeroed the padded input
    /// steps and zeroes the padded outputs afterwards, so a causal module's valid outputs are already right; the module
    /// must return, for each sequence, the state after its last valid step, and keep padded steps out of any
    /// statistic over time (batch norm in training).</para>
    /// </summary>
    /// <param name="x">Input <c>[B, L, H]</c> (or the module's own layout, see <see cref="PrepareInput"/>).</param>
    /// <param name="state">The state after the previous piece (already checked by <see cref="CheckState"/>), or null.</param>
    /// <param name="returnState">Whether to build and return the final state.</param>
    /// <param name="lengths">The valid lengths <c>[B]</c> (int64, on x's device, at least one sequence shorter than
    /// L), or null when every sequence fills the piece.</param>
    protected abstract (Tensor Output, StreamingState? State) Run(Tensor x, StreamingState? state, bool returnState, Tensor? lengths);

    /// <summary>
    /// Throws an <see cref="ArgumentException"/> whose <c>ParamName</c> is <c>"state"</c> unless
    /// <paramref name="state"/> is a state this module can continue: its type (a state of another module is
    /// refused) and its sizes (a state of the same module type with other sizes is refused). The batch size, device
    /// and dtype are already checked. Called before any computation; a block or model checks its children's states
    /// through their modules.
    /// </summary>
    /// <param name="state">The state given to <see cref="Stream(Tensor, StreamingState?)"/>.</param>
    protected internal abstract void CheckState(StreamingState state);

    /// <summary>
    /// Runs <paramref name="child"/> as <see cref="Run"/> would run it: its <c>forward</c> when no state goes in or
    /// out, else its <see cref="Stream(Tensor, StreamingState?)"/> (disposing the state when it is not wanted). For blocks and models.
    /// </summary>
    /// <param name="child">The inner sequence module.</param>
    /// <param name="x">Its input.</param>
    /// <param name="state">Its state, or null.</param>
    /// <param name="returnState">Whether its final state is wanted.</param>
    /// <param name="lengths">The valid lengths, or null.</param>
    protected static (Tensor Output, StreamingState? State) RunChild(SequenceModule child, Tensor x, StreamingState? state, bool returnState,
        Tensor? lengths = null)
    {
        if (state is null && !returnState) return (child.forward(x, lengths), null);
        var (y, next) = child.Stream(x, state, lengths);
        if (returnState) return (y, next);
        next.Dispose();
        return (y, null);
    }

    /// <summary>Calls <paramref name="child"/>'s <see cref="CheckState"/> (for blocks and models checking their children's states).</summary>
    /// <param name="child">The inner sequence module.</param>
    /// <param name="state">Its state.</param>
    protected static void CheckChildState(SequenceModule child, StreamingState state) => child.CheckState(state);

    /// <summary>Validates the input and returns it batched; override for other layouts.</summary>
    /// <param name="x">The input as the caller gave it.</param>
    /// <param name="paramName">The argument name to report.</param>
    protected virtual (Tensor Batched, bool Unbatched) PrepareInput(Tensor x, string paramName) =>
        Check.Sequence(x, InFeatures, paramName);

    /// <summary>The dimension of the batched input that is time (1 for <c>[B, L, H]</c>; a channels-first module: 2).</summary>
    protected virtual int TimeDim => 1;

    /// <summary>The valid steps of <paramref name="x"/> (time in <see cref="TimeDim"/>) as a mask that broadcasts over it.</summary>
    /// <param name="x">The batched input.</param>
    /// <param name="lengths">Validated lengths <c>[B]</c>.</param>
    protected Tensor StepMask(Tensor x, Tensor lengths)
    {
        var mask = SequenceLengths.Mask(lengths, x.shape[TimeDim]);                 // [B, L]
        var shape = Enumerable.Repeat(1L, (int)x.dim()).ToArray();
        shape[0] = x.shape[0];
        shape[TimeDim] = x.shape[TimeDim];
        return mask.view(shape);
    }

    private (Tensor Input, Tensor? Lengths, Tensor? Mask) ApplyLengths(Tensor input, Tensor? lengths)
    {
        if (lengths is null) return (input, null, null);
        var (valid, shortest) = SequenceLengths.ValidateWithMin(lengths, input.shape[0], input.shape[TimeDim], input.device, nameof(lengths));
        if (shortest == input.shape[TimeDim]) return (input, null, null);
        var mask = StepMask(input, valid);
        return (where(mask, input, zeros(1, dtype: input.dtype, device: input.device)), valid, mask);
    }

    private static Tensor MaskOutput(Tensor y, Tensor? mask) =>
        mask is null ? y : where(mask, y, zeros(1, dtype: y.dtype, device: y.device));

    private (Tensor Batched, bool Unbatched, Tensor Input) Prepare(Tensor x)
    {
        var (batched, unbatched) = PrepareInput(x, nameof(x));
        // One walk over the parameters: the first floating one gives both the device check and the compute dtype.
        var parameter = Precision.FloatingParameter(this);
        if (parameter is not null) Check.SameDevice(parameter, batched, "the module's parameters", nameof(x));
        return (batched, unbatched, Precision.As(batched, parameter?.dtype ?? batched.dtype));
    }

    private static Tensor Finish(Tensor y, Tensor x, Tensor batched, bool unbatched)
    {
        y = Precision.As(y, x.dtype);
        if (unbatched) y = y.squeeze(0);
        return ReferenceEquals(y, x) || ReferenceEquals(y, batched) ? y.alias() : y;
    }
}
