using Discretax.Streaming;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.Models;

/// <summary>
/// A network of named stages applied in order, like <c>torch.nn.Sequential</c>, that also streams: typically an
/// encoder, a model and a head, <c>new SequenceNetwork(("encoder", e), ("model", m), ("head", h))</c>. In
/// <see cref="Stream(Tensor, StreamingState?)"/>, every stage that streams (<see cref="IStreamingModule"/>: mixers, blocks, models and heads) is
/// streamed, its state carried, and every other stage (encoders, any per-position module) is applied to the piece as it
/// is. The state is a <see cref="SequenceModelState"/> with one state per streamed stage, in order. A pooling head
/// streams the running mean, so the output of the last piece equals the full forward's (in eval mode, up to rounding).
/// <para><c>state_dict</c> keys are <c>{stage name}.{parameter}</c>, as with <c>Sequential</c>.</para>
/// </summary>
public sealed class SequenceNetwork : nn.Module<Tensor, Tensor>, IStreamingModule
{
    private readonly List<(string Name, nn.Module<Tensor, Tensor> Module)> _stages;

    /// <summary>Creates the network from its stages.</summary>
    /// <param name="stages">The stages (at least one, at least one of them a <see cref="SequenceModule"/>), each with a
    /// unique name.</param>
    public SequenceNetwork(params (string Name, nn.Module<Tensor, Tensor> Module)[] stages) : base(nameof(SequenceNetwork))
    {
        ArgumentNullException.ThrowIfNull(stages);
        if (stages.Length == 0) throw new ArgumentException("A network needs at least one stage.", nameof(stages));
        var names = new HashSet<string>();
        for (int i = 0; i < stages.Length; i++)
        {
            var (name, module) = stages[i];
            if (string.IsNullOrEmpty(name) || name.Contains('.'))
                throw new ArgumentException($"Stage {i} needs a non-empty name without '.'; got '{name}'.", nameof(stages));
            if (!names.Add(name)) throw new ArgumentException($"Stage name '{name}' is used twice.", nameof(stages));
            if (module is null) throw new ArgumentException($"Stage '{name}' is null.", nameof(stages));
        }
        if (!stages.Any(s => s.Module is SequenceModule))
            throw new ArgumentException("A network needs at least one sequence module (a model, block or mixer) to stream.", nameof(stages));
        _stages = stages.ToList();
        foreach (var (name, module) in _stages) register_module(name, module);
    }

    /// <summary>The stages, in order.</summary>
    public IReadOnlyList<(string Name, nn.Module<Tensor, Tensor> Module)> Stages => _stages;

    /// <summary>The stage named <paramref name="name"/>.</summary>
    /// <param name="name">The stage's name.</param>
    public nn.Module<Tensor, Tensor> this[string name] =>
        _stages.FirstOrDefault(s => s.Name == name).Module
        ?? throw new KeyNotFoundException($"The network has no stage '{name}'; it has: {string.Join(", ", _stages.Select(s => s.Name))}.");

    /// <summary>Applies every stage in order.</summary>
    /// <param name="x">The network's input (the first stage's input).</param>
    public override Tensor forward(Tensor x) => forward(x, null);

    /// <summary>
    /// Applies every stage in order to a right-padded batch, threading <paramref name="lengths"/> to every stage that
    /// takes them (sequence modules and heads); the other stages act per position.
    /// </summary>
    /// <param name="x">The network's input (the first stage's input), right-padded.</param>
    /// <param name="lengths">The sequences' lengths, integer <c>[B]</c>, or null.</param>
    public Tensor forward(Tensor x, Tensor? lengths)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var scope = NewDisposeScope();
        var h = x;
        foreach (var (_, module) in _stages)
        {
            h = module switch
            {
                SequenceModule sequence when lengths is not null => sequence.forward(h, lengths),
                Heads.SequenceHead head when lengths is not null => head.forward(h, lengths),
                _ => module.forward(h),
            };
        }
        return (ReferenceEquals(h, x) ? h.alias() : h).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Runs the network over a piece of a sequence: sequence stages continue from <paramref name="state"/>, the other
    /// stages apply to the piece. Returns the output and the state after the piece's last step.
    /// </summary>
    /// <param name="x">The piece (the first stage's input layout).</param>
    /// <param name="state">The state returned for the previous piece, or null to start.</param>
    public (Tensor Output, StreamingState State) Stream(Tensor x, StreamingState? state = null) => Stream(x, state, null);

    /// <summary>
    /// Runs the network over a piece of a right-padded batch: as <see cref="Stream(Tensor, StreamingState?)"/>, with
    /// <paramref name="lengths"/> threaded to every streamed stage, so each sequence's state is the one after its last
    /// valid step.
    /// </summary>
    /// <param name="x">The piece.</param>
    /// <param name="state">The state returned for the previous piece, or null to start.</param>
    /// <param name="lengths">The valid lengths of the piece, integer <c>[B]</c>, or null.</param>
    public (Tensor Output, StreamingState State) Stream(Tensor x, StreamingState? state, Tensor? lengths)
    {
        ArgumentNullException.ThrowIfNull(x);
        var streamed = _stages.Select(s => s.Module).OfType<IStreamingModule>().ToList();
        SequenceModelState? previous = null;
        if (state is not null)
        {
            if (state.IsDisposed) throw new ObjectDisposedException(nameof(state), "The streaming state was disposed.");
            previous = StreamingState.Expect<SequenceModelState>(state, nameof(SequenceNetwork));
            previous.Validate(streamed.Count, $"{nameof(SequenceNetwork)} (streamed stages)");
            for (int i = 0; i < streamed.Count; i++)
                if (streamed[i] is SequenceModule sequence) sequence.CheckState(previous.Blocks[i]);
        }
        using var scope = NewDisposeScope();
        var h = x;
        var next = new List<StreamingState>(streamed.Count);
        foreach (var (_, module) in _stages)
        {
            if (module is IStreamingModule streaming)
            {
                var (y, s) = streaming.Stream(h, previous?.Blocks[next.Count], lengths);
                h = y;
                next.Add(s);
            }
            else h = module.forward(h);
        }
        var result = new SequenceModelState(next);
        result.MoveToOuterDisposeScope();
        return ((ReferenceEquals(h, x) ? h.alias() : h).MoveToOuterDisposeScope(), result);
    }
}
