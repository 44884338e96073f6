using Discretax.Kernels;
using Discretax.Models;
using Discretax.SequenceMixers;
using Discretax.Streaming;
using static TorchSharp.torch;

namespace Discretax.Tests.Contracts;

public sealed class S4DSequenceMixerContract() : SequenceModuleContract(8, h => new S4DSequenceMixer(h));

public sealed class S4DSequenceMixerAllOptionsContract() : SequenceModuleContract(8, h => new S4DSequenceMixer(h, stateDim: 16, transposed: false,
    init: S4DInit.Inv, discretization: Discretization.Bilinear, useD: true, useOutputLinear: true));

/// <summary>
/// The transposed mixer (<c>[B, H, L]</c> in and out) cannot join the suite directly, whose inputs are <c>[B, L, H]</c>;
/// this adapter transposes around it, so streaming, causality, gradients and save/load run through the transposed
/// code path. Its own validation of channels-first input is tested in S4DSequenceMixerTests.
/// </summary>
public sealed class TransposedS4DSequenceMixerContract() : SequenceModuleContract(8, h => new TransposingAdapter(
    new S4DSequenceMixer(h, stateDim: 8, transposed: true, useD: true, useOutputLinear: true)));

public sealed class S4DModelContract() : SequenceModuleContract(8, h => new S4D(h, numBlocks: 2, stateDim: 16));

/// <summary>Test helper: runs a channels-first sequence module on batch-first input, transposing in and out.</summary>
internal sealed class TransposingAdapter : SequenceModule
{
    public SequenceModule inner;

    public TransposingAdapter(SequenceModule inner) : base(nameof(TransposingAdapter), inner.InFeatures)
    {
        this.inner = inner;
        RegisterComponents();
    }

    protected override (Tensor Output, StreamingState? State) Run(Tensor x, StreamingState? state, bool returnState, Tensor? lengths)
    {
        if (state is null && !returnState) return (inner.forward(x.transpose(1, 2), lengths).transpose(1, 2), null);
        var (y, next) = inner.Stream(x.transpose(1, 2), ((BlockState?)state)?.Mixer, lengths);
        return (y.transpose(1, 2), new BlockState(next));
    }

    protected internal override void CheckState(StreamingState state) =>
        CheckChildState(inner, StreamingState.Expect<BlockState>(state, nameof(TransposingAdapter)).Mixer);
}
