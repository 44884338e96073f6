using Discretax.Streaming;

namespace MnistClassifier.Models;

/// <summary>One model of the <see cref="ModelCatalog"/>.</summary>
/// <param name="Name">The name given to <c>--model</c>.</param>
/// <param name="Description">One line for the help text.</param>
/// <param name="Create">Builds the model <c>[B, L, hidden] -> [B, L, hidden]</c> from the spec (hidden size, blocks, dropout
/// rate, and the sequence length for models whose initialization depends on it).</param>
/// <param name="StandardBlocks">Whether the model is made of standard blocks, whose norm and activation <c>--block</c> sets.</param>
public sealed record ModelEntry(string Name, string Description, Func<NetworkSpec, SequenceModule> Create, bool StandardBlocks = true);
