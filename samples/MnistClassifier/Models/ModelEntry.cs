using Discretax.Streaming;

namespace MnistClassifier.Models;

/// <summary>One model of the <see cref="ModelCatalog"/>.</summary>
/// <param name="Name">The name given to <c>--model</c>.</param>
/// <param name="Description">One line for the help text.</param>
/// <param name="Create">Builds the model <c>[B, L, hidden] -> [B, L, hidden]</c> from (hidden, blocks, dropRate).</param>
public sealed record ModelEntry(string Name, string Description, Func<int, int, double, SequenceModule> Create);
