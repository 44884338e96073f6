using Discretax.Streaming;

namespace Discretax.SequenceMixers;

/// <summary>
/// Base of the sequence mixers: modules that mix information along time, <c>[B, L, H] -> [B, L, H]</c>,
/// causally, and can stream (docs/architecture.md, "Streaming").
/// </summary>
public abstract class SequenceMixer : SequenceModule
{
    /// <summary>Creates the mixer.</summary>
    /// <param name="name">The module's name.</param>
    /// <param name="inFeatures">The feature size H.</param>
    protected SequenceMixer(string name, long inFeatures) : base(name, inFeatures) { }
}
