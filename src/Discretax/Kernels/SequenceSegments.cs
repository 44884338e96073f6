namespace Discretax.Kernels;

/// <summary>
/// The segment length of the chunked kernels (<see cref="DeltaRule.Chunked"/>, <see cref="MLSTMKernel.Chunkwise"/>):
/// sequences longer than this are processed segment by segment with the state carried across, so that the batched
/// per-chunk temporaries of one call stay cache-sized and the time grows linearly in L. Segments are whole numbers
/// of chunks, so the chunks and the arithmetic are the same as without segments.
/// </summary>
internal static class SequenceSegments
{
    /// <summary>The whole number of chunks closest to 1024 steps (at least one chunk).</summary>
    /// <param name="chunkSize">The chunk length (at least 1).</param>
    internal static long Length(int chunkSize) => Math.Max(1, 1024 / chunkSize) * (long)chunkSize;
}
