using TextGenerator.Models;
using static TorchSharp.torch;

namespace TextGenerator.Tests;

public class ModelCatalogTests
{
    public static TheoryData<string> Names => new(ModelCatalog.Names);

    /// <summary>
    /// In training mode too, a step's logits do not depend on later tokens (the library models' default batch norm
    /// would break this: its statistics span the window).
    /// </summary>
    [Theory]
    [MemberData(nameof(Names))]
    public void Every_model_is_causal_in_training_mode(string name)
    {
        torch.random.manual_seed(1);
        using var model = ModelCatalog.Create(name, 16, 2);
        var module = (nn.Module<Tensor, Tensor>)model.Module;
        module.train();
        using var scope = NewDisposeScope();
        var tokens = randint(0, 256, new long[] { 2, 24 }, dtype: ScalarType.Int64);
        var changed = tokens.clone();
        changed[.., 16] = (changed[.., 16] + 1) % 256;
        var before = module.forward(tokens).narrow(1, 0, 16);
        var after = module.forward(changed).narrow(1, 0, 16);
        before.allclose(after, rtol: 0, atol: 1e-6).Should().BeTrue($"{name}'s logits before step 16 must not see step 16");
    }
}
