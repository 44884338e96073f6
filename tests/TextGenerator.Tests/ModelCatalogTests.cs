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

    /// <summary>
    /// The library models' loss on a batch of windows resets at every end-of-text: it equals the loss of the
    /// documents cut at end-of-text and at the window ends, as a padded batch (1e-5, float32), and counts one fewer
    /// prediction per document piece.
    /// </summary>
    [Theory]
    [InlineData("lru")]
    [InlineData("deltanet")]
    [InlineData("gated-deltanet")]
    [InlineData("mamba2")]
    public void The_loss_of_windows_resets_at_every_end_of_text(string name)
    {
        using var model = ModelCatalog.Create(name, 16, 2);
        var lm = (Discretax.Models.CausalLM)model.Module;
        lm.eval();
        using var scope = NewDisposeScope();
        long eot = Discretax.Text.ByteTokenizer.EndOfText;
        var windows = new long[,] { { 1, 2, 3, eot, 5, 6, 7, 8 }, { 9, 10, eot, 11, 12, eot, 0, 0 } };
        var (loss, predicted) = model.Loss(tensor(windows), tensor(new long[] { 8, 6 }));
        // pieces: [1 2 3 eot] [5 6 7 8] [9 10 eot] [11 12 eot]
        var pieces = new long[,] { { 1, 2, 3, eot }, { 5, 6, 7, 8 }, { 9, 10, eot, 0 }, { 11, 12, eot, 0 } };
        var expected = lm.Loss(tensor(pieces), tensor(new long[] { 4, 4, 3, 3 }));
        predicted.Should().Be(3 + 3 + 2 + 2);
        loss.item<float>().Should().BeApproximately(expected.item<float>(), 1e-5f);
    }
}
