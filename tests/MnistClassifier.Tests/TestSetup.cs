using System.Runtime.CompilerServices;

namespace MnistClassifier.Tests;

/// <summary>Process-wide setup of the test assembly.</summary>
public static class TestSetup
{
    /// <summary>
    /// One intra-op thread: the tests use tiny tensors and run in parallel with each other, where more
    /// threads only add contention (on 2 shared cores, 2 threads made the training smoke test many times slower).
    /// </summary>
    [ModuleInitializer]
    public static void Init() => torch.set_num_threads(1);
}
