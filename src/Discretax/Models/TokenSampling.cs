using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Models;

/// <summary>
/// The choice of the next token from logits <c>[B, V]</c> for <see cref="CausalLM.Generate"/>: greedy, or
/// temperature, then HuggingFace's top-k, then its top-p, then a draw with an explicit generator.
/// </summary>
internal static class TokenSampling
{
    /// <summary>One token per row of <paramref name="logits"/> <c>[B, V]</c> (see <see cref="CausalLM.Generate"/> for the order).</summary>
    internal static long[] Next(Tensor logits, double temperature, int? topK, double? topP, Generator generator)
    {
        var z = logits.to_type(Precision.StateDType(logits.dtype));
        Tensor chosen;
        if (temperature <= 0) chosen = z.argmax(-1);
        else
        {
            z = FilterTopP(FilterTopK(z / temperature, topK), topP);
            chosen = multinomial(z.softmax(-1), 1, generator: generator).squeeze(-1);
        }
        return chosen.to_type(ScalarType.Int64).cpu().data<long>().ToArray();
    }

    /// <summary>HuggingFace's <c>TopKLogitsWarper</c>: logits below the k-th largest become <c>-inf</c>.</summary>
    internal static Tensor FilterTopK(Tensor z, int? topK)
    {
        if (topK is not int k || k >= z.shape[^1]) return z;
        var kth = z.topk(k, dim: -1).values.narrow(-1, k - 1, 1);
        return z.masked_fill(z < kth, double.NegativeInfinity);
    }

    /// <summary>HuggingFace's <c>TopPLogitsWarper</c>: sorted ascending, the tokens whose cumulative probability is at
    /// most <c>1 - p</c> become <c>-inf</c>; the most likely token is always kept.</summary>
    internal static Tensor FilterTopP(Tensor z, double? topP)
    {
        if (topP is not double p || p >= 1) return z;
        var (sorted, indices) = z.sort(-1, descending: false);
        var cumulative = sorted.softmax(-1).cumsum(-1);
        var remove = cumulative <= (1 - p);
        remove.select(-1, -1).fill_(false);
        var removeAtIndex = remove.scatter(-1, indices, remove);
        return z.masked_fill(removeAtIndex, double.NegativeInfinity);
    }
}
