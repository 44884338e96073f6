using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Kernels;

/// <summary>
/// The segment length of the chunked kernels (<see cref="DeltaRule.Chunked"/>, <see cref="GatedDeltaRule.Chunked"/>,
/// <see cref="MLSTMKernel.Chunked"/>):
/// sequences longer than this are processed segment by segment with the state carried across, so that the batched
/// per-chunk temporaries of one call stay cache-sized and the time grows linearly in L. Segments are whole numbers
/// of chunks, so the chunks and the arithmetic are the same as without segments.
/// </summary>
internal static class SequenceSegments
{
    /// <summary>The whole number of chunks closest to 1024 steps (at least one chunk).</summary>
    /// <param name="chunkSize">The chunk length (at least 1).</param>
    internal static long Length(int chunkSize) => Math.Max(1, 1024 / chunkSize) * (long)chunkSize;

    /// <summary>
    /// Runs a chunked kernel over <paramref name="length"/> steps segment by segment: <paramref name="piece"/>
    /// receives (start, length, state entering the segment) and returns the segment's output <c>[B, NH, len, D]</c>
    /// and the state after it. Returns the outputs joined along time and the final state. Intermediate states
    /// (never <paramref name="initialState"/>) are handed to <paramref name="release"/> once consumed.
    /// </summary>
    internal static (Tensor Output, TState State) Run<TState>(long length, int chunkSize, TState initialState,
        Func<long, long, TState, (Tensor Output, TState State)> piece, Action<TState>? release = null)
    {
        long segment = Length(chunkSize);
        var pieces = new List<Tensor>();
        TState carried = initialState;
        for (long start = 0; start < length; start += segment)
        {
            var (output, next) = piece(start, Math.Min(segment, length - start), carried);
            pieces.Add(output);
            if (release is not null && start > 0) release(carried);   // an intermediate state, never the initial one
            carried = next;
        }
        return (torch.cat(pieces, 2), carried);
    }
}
