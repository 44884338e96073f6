namespace Discretax.Tests;

/// <summary>
/// Tests whose assertions depend on the exact draws that follow a <c>torch.manual_seed</c> of libtorch's one global
/// generator (sample statistics of a model's initialization): run apart from all others, so that no test running in
/// parallel takes draws from the generator between the seed and the draws being checked.
/// </summary>
[CollectionDefinition(nameof(SeededDrawsCollection), DisableParallelization = true)]
public sealed class SeededDrawsCollection
{
}
