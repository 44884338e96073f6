using static TorchSharp.torch;

namespace Discretax.Streaming;

/// <summary>
/// The streaming contract (docs/architecture.md, "Streaming"): a module that can continue a sequence from a state.
/// Feeding a sequence in pieces of any sizes (including 1), each with the state the previous piece
/// returned, gives the same outputs as one full forward in eval mode.
/// </summary>
public interface IStreamingModule
{
    /// <summary>
    /// Runs the module over a piece of a sequence, continuing from <paramref name="state"/>.
    /// </summary>
    /// <param name="x">The piece, batch-first <c>[B, L, H]</c> or unbatched <c>[L, H]</c> (then B = 1 and the
    /// output is unbatched).</param>
    /// <param name="state">The state returned by the previous piece, or null to start a new sequence.</param>
    /// <returns>The piece's output and the state after its last step. The caller owns (and disposes) both; the
    /// input state is neither changed nor disposed.</returns>
    (Tensor Output, StreamingState State) Stream(Tensor x, StreamingState? state = null);

    /// <summary>
    /// Runs the module over a piece of a right-padded batch: sequence b's piece is <c>x[b, :lengths[b]]</c>, and the
    /// returned state is, for each sequence, the state after its last valid step (docs/variable-length.md).
    /// </summary>
    /// <param name="x">The piece, <c>[B, L, H]</c> or <c>[L, H]</c>.</param>
    /// <param name="state">The state returned by the previous piece, or null.</param>
    /// <param name="lengths">The valid lengths of the piece, integer <c>[B]</c>, <c>1 &lt;= lengths[b] &lt;= L</c>, or null.</param>
    (Tensor Output, StreamingState State) Stream(Tensor x, StreamingState? state, Tensor? lengths);
}
