using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Kernels;

/// <summary>
/// Packed sequences in flash-linear-attention's <c>cu_seqlens</c> convention: N sequences concatenated along time in
/// one row (batch 1), with the cumulative boundaries <c>cuSeqlens</c> (int64 <c>[N + 1]</c>, starting at 0, ending at
/// L, strictly increasing); sequence n covers the steps <c>[cuSeqlens[n], cuSeqlens[n + 1])</c>. Validation and the
/// index bookkeeping the packed kernels share (docs/kernels/contracts.md, "Packed sequences").
/// </summary>
internal sealed class PackedSequences
{
    /// <summary>The N + 1 boundaries (read once to the host).</summary>
    internal long[] Bounds { get; }

    /// <summary>The number of sequences N.</summary>
    internal int Count => Bounds.Length - 1;

    /// <summary>The start of sequence n.</summary>
    internal long Start(int n) => Bounds[n];

    /// <summary>The length of sequence n.</summary>
    internal long Length(int n) => Bounds[n + 1] - Bounds[n];

    private PackedSequences(long[] bounds) => Bounds = bounds;

    /// <summary>
    /// Checks <paramref name="cuSeqlens"/> against a packed row of <paramref name="batch"/> rows of
    /// <paramref name="length"/> steps and returns the boundaries. Throws <see cref="ArgumentException"/> naming
    /// <c>cuSeqlens</c> (or <paramref name="batchArgument"/> for a batch other than 1).
    /// </summary>
    internal static PackedSequences Validate(Tensor cuSeqlens, long batch, long length, string batchArgument)
    {
        ArgumentNullException.ThrowIfNull(cuSeqlens);
        if (cuSeqlens.dtype != ScalarType.Int64 || cuSeqlens.dim() != 1)
            throw new ArgumentException($"Expected cuSeqlens of dtype int64 and rank 1 [N + 1]; got {cuSeqlens.dtype} of shape {Check.Shape(cuSeqlens)}.", nameof(cuSeqlens));
        if (cuSeqlens.shape[0] < 2)
            throw new ArgumentException($"Expected cuSeqlens [N + 1] with N >= 1; got shape {Check.Shape(cuSeqlens)}.", nameof(cuSeqlens));
        if (batch != 1)
            throw new ArgumentException($"Expected a packed batch of 1 row with cuSeqlens (the sequences are concatenated along time); got batch {batch}.", batchArgument);
        if (cuSeqlens.device.ToString() == "meta")
            throw new ArgumentException("Expected cuSeqlens with readable values (it is read on the host); got a meta tensor.", nameof(cuSeqlens));
        long[] bounds;
        // Both handles are new (cpu() of a CPU tensor too) and disposed here, so none stays in the caller's dispose scope.
        using (var onHost = cuSeqlens.cpu())
        using (var host = onHost.contiguous())
            bounds = host.data<long>().ToArray();
        if (bounds[0] != 0)
            throw new ArgumentException($"Expected cuSeqlens to start at 0; got {bounds[0]}.", nameof(cuSeqlens));
        if (bounds[^1] != length)
            throw new ArgumentException($"Expected cuSeqlens to end at the packed length L = {length}; got {bounds[^1]}.", nameof(cuSeqlens));
        for (int i = 1; i < bounds.Length; i++)
        {
            if (bounds[i] <= bounds[i - 1])
                throw new ArgumentException($"Expected cuSeqlens strictly increasing; got {bounds[i - 1]} then {bounds[i]} at index {i}.", nameof(cuSeqlens));
        }
        return new PackedSequences(bounds);
    }

    /// <summary>
    /// Checks that a per-sequence state part has the shape <c>[N, rest...]</c>; throws naming
    /// <c>initialState</c>.
    /// </summary>
    internal void CheckState(Tensor part, long[] rest, string layout, string what = "initialState")
    {
        var expected = new long[] { Count }.Concat(rest).ToArray();
        if (!part.shape.SequenceEqual(expected))
            throw new ArgumentException($"Expected {what} {layout} = {Check.Shape(expected)} (one per packed sequence); got shape {Check.Shape(part)}.", "initialState");
    }

    /// <summary>The first step of every sequence, int64 <c>[N]</c> on <paramref name="device"/>.</summary>
    internal Tensor Starts(Device device) => tensor(Bounds[..^1], device: device);

    /// <summary>The last step of every sequence, int64 <c>[N]</c> on <paramref name="device"/>.</summary>
    internal Tensor Ends(Device device) => tensor(Bounds[1..].Select(e => e - 1).ToArray(), device: device);

    /// <summary>
    /// The chunk-aligned layout of the packed row: every sequence padded at its end to a whole number of
    /// <paramref name="chunkSize"/> steps, so that no chunk straddles a boundary. Returns the gather index of length
    /// <c>L'</c> into the row extended by one pad step (index L means the pad step), the positions of the real steps
    /// in the aligned row (length L, in order), the first chunk of every sequence and its last chunk.
    /// </summary>
    internal (Tensor Gather, Tensor Scatter, long[] FirstChunk, long[] LastChunk, long AlignedLength) ChunkAligned(int chunkSize, Device device)
    {
        long c = chunkSize, length = Bounds[^1];
        var first = new long[Count];
        var last = new long[Count];
        long chunks = 0;
        for (int n = 0; n < Count; n++)
        {
            first[n] = chunks;
            chunks += (Length(n) + c - 1) / c;
            last[n] = chunks - 1;
        }
        long aligned = chunks * c;
        var gather = new long[aligned];
        Array.Fill(gather, length);
        var scatter = new long[length];
        for (int n = 0; n < Count; n++)
        {
            long at = first[n] * c, start = Start(n);
            for (long j = 0; j < Length(n); j++)
            {
                gather[at + j] = start + j;
                scatter[start + j] = at + j;
            }
        }
        return (tensor(gather, device: device), tensor(scatter, device: device), first, last, aligned);
    }

    /// <summary>
    /// A chunked kernel's core over padded inputs: runs <paramref name="chunks"/> whole chunks of <paramref name="inputs"/>
    /// (time on dimension 2) from <paramref name="state"/>, which holds the state after the last chunk on return;
    /// <paramref name="enter"/> may replace the state entering chunk j, <paramref name="exit"/> sees the state after it.
    /// Returns the outputs with time on dimension 2.
    /// </summary>
    internal delegate Tensor ChunkCore(Tensor[] inputs, long chunks, ref Tensor state, Func<long, Tensor, Tensor> enter, Action<long, Tensor> exit);

    /// <summary>
    /// The chunk-aligned packed run the chunked kernels share (<see cref="ChunkAligned"/>): the inputs (batch 1, time on
    /// dimension 2) are gathered into the aligned row in <paramref name="dtype"/> (every sequence padded with zero steps
    /// to whole chunks), run through <paramref name="core"/> in segments of whole chunks (<see cref="SequenceSegments"/>)
    /// with the state reset to the sequence's <paramref name="initial"/> state at the chunk where a sequence starts, and
    /// scattered back. Exact when a zero step leaves the kernel's state unchanged. Returns the output (time on dimension
    /// 2, the packed row's length) and the state after each sequence's last chunk.
    /// </summary>
    internal (Tensor Output, Tensor[] Finals) RunChunkAligned(int chunkSize, ScalarType dtype, Tensor[] inputs, Func<int, Tensor> initial,
        ChunkCore core)
    {
        long c = chunkSize;
        var (gather, scatter, first, last, aligned) = ChunkAligned(chunkSize, inputs[0].device);
        // Rows gathered into the aligned layout from the row extended by one zero step (the padding).
        var alignedInputs = inputs.Select(t =>
        {
            var tc = Precision.As(t, dtype);
            return cat(new[] { tc, zeros_like(tc.narrow(2, 0, 1)) }, 2).index_select(2, gather);
        }).ToArray();
        var starting = new Dictionary<long, int>();
        var ending = new Dictionary<long, int>();
        for (int i = 0; i < Count; i++)
        {
            starting[first[i]] = i;
            ending[last[i]] = i;
        }
        var finals = new Tensor[Count];
        long chunks = aligned / c;
        long group = SequenceSegments.Length(chunkSize) / c;   // whole chunks per segment, as the unpacked kernels
        var pieces = new List<Tensor>();
        Tensor s = initial(0);
        for (long c0 = 0; c0 < chunks; c0 += group)
        {
            long count = Math.Min(group, chunks - c0);
            long offset = c0;
            var piece = alignedInputs.Select(t => t.narrow(2, offset * c, count * c)).ToArray();
            pieces.Add(core(piece, count, ref s,
                (j, state) => starting.TryGetValue(offset + j, out var i) && offset + j > 0 ? initial(i) : state,
                (j, state) =>
                {
                    if (ending.TryGetValue(offset + j, out var i)) finals[i] = state;
                }));
        }
        var output = (pieces.Count == 1 ? pieces[0] : cat(pieces.ToArray(), 2)).index_select(2, scatter);
        return (output, finals);
    }
}
