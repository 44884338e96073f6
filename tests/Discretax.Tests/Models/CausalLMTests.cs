using Discretax.Blocks;
using Discretax.Models;
using Discretax.Streaming;
using Discretax.Tests.Docs;
using Discretax.Text;
using static TorchSharp.torch;

namespace Discretax.Tests.Models;

public class CausalLMTests
{
    private const long V = ByteTokenizer.VocabSize;

    private static SequenceModule Model(string name) => name switch
    {
        "LRU" => new LRU(16, numBlocks: 2, stateDim: 8),
        "DeltaNet" => new DeltaNet(16, numBlocks: 2, numHeads: 2, chunkSize: 4),
        "MLSTM" => new MLSTM(16, numBlocks: 1, chunkSize: 4),
        "DeltaNetConv" => new DeltaNet(16, numBlocks: 2, numHeads: 2, chunkSize: 4, useShortConv: true),
        "S5" => new S5(16, numBlocks: 2, stateDim: 8),
        _ => throw new ArgumentException(name),
    };

    /// <summary>A float64 language model in eval mode.</summary>
    private static CausalLM Lm(string name = "LRU", bool tie = false, NormKind? norm = NormKind.Rms)
    {
        var lm = new CausalLM(V, Model(name), norm, tieWeights: tie);
        lm.to(ScalarType.Float64);
        lm.eval();
        return lm;
    }

    private static readonly long[][] Prompts =
    {
        ByteTokenizer.Encode("Hello"),
        ByteTokenizer.Encode("é"),
        ByteTokenizer.Encode("The quick"),
    };

    private static long[] Row(Tensor t) => t.to_type(ScalarType.Int64).cpu().data<long>().ToArray();

    /// <summary>The argmax of the last logits of a full forward over <paramref name="ids"/>.</summary>
    private static long GreedyNext(CausalLM lm, long[] ids)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var logits = lm.forward(tensor(ids, new long[] { 1, ids.Length }, ScalarType.Int64));
        return logits[0, -1].argmax().item<long>();
    }

    [Fact]
    public void ForwardGivesLogitsInTheModelsDtypeBatchedAndUnbatched()
    {
        using var lm = new CausalLM(V, Model("LRU"));
        lm.eval();
        using var tokens = tensor(new long[] { 1, 2, 3, 4, 5, 6 }, new long[] { 2, 3 });
        using var y = lm.forward(tokens);
        y.shape.Should().Equal(2, 3, V);
        y.dtype.Should().Be(ScalarType.Float32);
        using var u = lm.forward(tokens[0]);
        u.shape.Should().Equal(3, V);
        TestUtil.MaxAbsDiff(u, y[0]).Should().BeLessThan(1e-6);
        lm.to(ScalarType.Float64);
        using var y64 = lm.forward(tokens);
        y64.dtype.Should().Be(ScalarType.Float64);
        lm.state_dict().Keys.Should().Contain(new[] { "embeddings.weight", "norm.weight", "lm_head.weight" });
        lm.state_dict().Keys.Should().Contain(k => k.StartsWith("model.blocks."));
    }

    /// <summary>
    /// The loss of packed documents equals the loss of the same documents as a right-padded batch (float64, 1e-12),
    /// for models that run packed input natively and through the padded path; a document of one token predicts nothing.
    /// </summary>
    [Theory]
    [InlineData("LRU")]
    [InlineData("DeltaNet")]
    [InlineData("MLSTM")]
    public void PackedLossEqualsThePaddedBatchLoss(string name)
    {
        using var scope = NewDisposeScope();
        var lm = Lm(name);
        var docs = new[] { ByteTokenizer.Encode("abc", true), ByteTokenizer.Encode("x"), ByteTokenizer.Encode("hello there", true) };
        var padded = new long[docs.Length, docs.Max(d => d.Length)];
        for (int i = 0; i < docs.Length; i++) for (int j = 0; j < docs[i].Length; j++) padded[i, j] = docs[i][j];
        var expected = lm.Loss(tensor(padded), tensor(docs.Select(d => (long)d.Length).ToArray())).item<double>();
        var packed = tensor(docs.SelectMany(d => d).ToArray());
        var cu = tensor(new long[] { 0, docs[0].Length, docs[0].Length + docs[1].Length, docs.Sum(d => d.Length) });
        var (loss, predicted) = lm.LossPacked(packed, cu);
        predicted.Should().Be(docs.Sum(d => d.Length - 1));
        loss.item<double>().Should().BeApproximately(expected, 1e-12);
        FluentActions.Invoking(() => lm.LossPacked(packed, tensor(new long[] { 0, 3 }))).Should().Throw<ArgumentException>().Which.ParamName.Should().Be("cuSeqlens");
    }

    [Theory]
    [InlineData("LRU")]
    [InlineData("DeltaNet")]
    [InlineData("MLSTM")]
    public void PaddedForwardGivesEachSequencesLogitsAndZerosAtPaddedSteps(string name)
    {
        using var lm = Lm(name);
        var (tokens, lengths) = ByteTokenizer.EncodeBatch(new[] { "abcdef", "xy", "hello" }, padId: -1);
        using (tokens)
        using (lengths)
        using (var y = lm.forward(tokens, lengths))
        {
            var lens = Row(lengths);
            for (int b = 0; b < 3; b++)
            {
                using var alone = lm.forward(tokens[b].narrow(0, 0, lens[b]).unsqueeze(0));
                TestUtil.MaxAbsDiff(y[b].narrow(0, 0, lens[b]), alone[0]).Should().BeLessThan(1e-9);
                if (lens[b] < 6) y[b].narrow(0, lens[b], 6 - lens[b]).abs().max().item<double>().Should().Be(0);
            }
        }
    }

    [Fact]
    public void LossIsTheMeanNextTokenCrossEntropyOverPredictedPositions()
    {
        using var lm = Lm("DeltaNet");
        var (tokens, lengths) = ByteTokenizer.EncodeBatch(new[] { "abcdef", "xy", "q" }, padId: -1);
        using (tokens)
        using (lengths)
        {
            using var loss = lm.Loss(tokens, lengths);
            loss.dtype.Should().Be(ScalarType.Float64);
            loss.dim().Should().Be(0);
            using var logits = lm.forward(tokens, lengths);
            var lens = Row(lengths);
            double sum = 0;
            int count = 0;
            for (int b = 0; b < 3; b++)
                for (int t = 0; t + 1 < lens[b]; t++)
                {
                    using var lp = logits[b, t].log_softmax(-1);
                    sum -= lp[tokens[b, t + 1].item<long>()].item<double>();
                    count++;
                }
            count.Should().Be(5 + 1 + 0);
            loss.item<double>().Should().BeApproximately(sum / count, 1e-12);

            using var full = lm.Loss(tokens[0].unsqueeze(0));
            using var first = lm.forward(tokens[0].unsqueeze(0));
            using var lps = first[0].narrow(0, 0, 5).log_softmax(-1);
            using var hand = lps.gather(-1, tokens[0].narrow(0, 1, 5).unsqueeze(-1)).mean().neg();
            full.item<double>().Should().BeApproximately(hand.item<double>(), 1e-12);
        }
    }

    [Theory]
    [InlineData("LRU")]
    [InlineData("DeltaNet")]
    [InlineData("MLSTM")]
    [InlineData("DeltaNetConv")]
    [InlineData("S5", "Layer")]
    [InlineData("LRU", "Batch")]
    [InlineData("LRU", "none", true)]
    public void GreedyGenerationIsTheArgmaxOfAFullForwardAtEveryStep(string name, string norm = "Rms", bool tie = false)
    {
        using var lm = Lm(name, tie, norm == "none" ? null : Enum.Parse<NormKind>(norm));
        var generated = lm.Generate(Prompts, maxNewTokens: 6, temperature: 0);
        generated.Should().HaveCount(Prompts.Length);
        for (int b = 0; b < Prompts.Length; b++)
        {
            generated[b].Should().HaveCount(6);
            for (int i = 0; i < 6; i++)
                generated[b][i].Should().Be(GreedyNext(lm, Prompts[b].Concat(generated[b].Take(i)).ToArray()),
                    "prompt {0}, new token {1}", b, i);
        }
    }

    [Fact]
    public void SamplingIsReproducibleForASeedAndTopKOneOrATinyTopPIsGreedy()
    {
        using var lm = Lm("LRU");
        var a = lm.Generate(Prompts, 8, temperature: 1.0, seed: 7);
        var b = lm.Generate(Prompts, 8, temperature: 1.0, seed: 7);
        var c = lm.Generate(Prompts, 8, temperature: 1.0, seed: 8);
        for (int i = 0; i < Prompts.Length; i++) b[i].Should().Equal(a[i]);
        a.SelectMany(x => x).Should().NotEqual(c.SelectMany(x => x), "another seed draws other tokens (near-uniform logits, 24 draws)");
        a.SelectMany(x => x).Should().OnlyContain(t => t >= 0 && t < V);

        var greedy = lm.Generate(Prompts, 5, temperature: 0);
        var topK1 = lm.Generate(Prompts, 5, temperature: 1.3, topK: 1, seed: 3);
        var tinyP = lm.Generate(Prompts, 5, temperature: 0.7, topP: 1e-9, seed: 4);
        var filtered = lm.Generate(Prompts, 5, temperature: 1.0, topK: 5, topP: 0.5, seed: 5);
        for (int i = 0; i < Prompts.Length; i++)
        {
            topK1[i].Should().Equal(greedy[i]);
            tinyP[i].Should().Equal(greedy[i]);
            filtered[i].Should().HaveCount(5);
        }
    }

    /// <summary>HuggingFace's warpers on probabilities [0.5, 0.2, 0.15, 0.1, 0.05] (shuffled).</summary>
    [Fact]
    public void TopKAndTopPFilterAsHuggingFaceDoes()
    {
        using var scope = NewDisposeScope();
        var probs = new[] { 0.1, 0.5, 0.05, 0.2, 0.15 };
        var z = tensor(probs, new long[] { 1, 5 }, ScalarType.Float64).log();
        bool[] Kept(Tensor filtered) => filtered[0].isfinite().data<bool>().ToArray();

        Kept(TokenSampling.FilterTopK(z, 2)).Should().Equal(false, true, false, true, false);
        Kept(TokenSampling.FilterTopK(z, 5)).Should().OnlyContain(k => k);
        Kept(TokenSampling.FilterTopK(z, null)).Should().OnlyContain(k => k);
        // Top-p: the smallest most likely set whose probability reaches p (0.5 + 0.2 = 0.7 < 0.75 <= 0.85).
        Kept(TokenSampling.FilterTopP(z, 0.75)).Should().Equal(false, true, false, true, true);
        Kept(TokenSampling.FilterTopP(z, 0.3)).Should().Equal(false, true, false, false, false); // at least the most likely
        Kept(TokenSampling.FilterTopP(z, 1.0)).Should().OnlyContain(k => k);
        // Top-k first, then top-p on the renormalized rest: top-2 is {0.5, 0.2}, i.e. {5/7, 2/7}; p = 0.6 keeps 5/7 only.
        Kept(TokenSampling.FilterTopP(TokenSampling.FilterTopK(z, 2), 0.6)).Should().Equal(false, true, false, false, false);
        // Ties with the k-th are kept, as torch.topk's threshold does.
        var tied = tensor(new[] { 1.0, 2.0, 2.0, 0.0 }, new long[] { 1, 4 }, ScalarType.Float64);
        Kept(TokenSampling.FilterTopK(tied, 1)).Should().Equal(false, true, true, false);
    }

    [Fact]
    public void SamplingDrawsFromTheSoftmaxWithTheGivenGenerator()
    {
        using var scope = NewDisposeScope();
        var z = tensor(new[] { 0.1, 0.5, 0.05, 0.2, 0.15 }, new long[] { 1, 5 }, ScalarType.Float64).log().expand(4000, 5);
        using var g = new Generator(5);
        var draws = TokenSampling.Next(z, 1.0, null, null, g);
        var counts = new double[5];
        foreach (var d in draws) counts[d]++;
        var expected = new[] { 0.1, 0.5, 0.05, 0.2, 0.15 };
        for (int i = 0; i < 5; i++) (counts[i] / draws.Length).Should().BeApproximately(expected[i], 0.03);
        // Temperature 0.5 squares the probabilities (renormalized); temperature <= 0 is the argmax.
        var sharp = TokenSampling.Next(z, 0.5, null, null, g);
        (sharp.Count(d => d == 1) / (double)sharp.Length).Should().BeApproximately(0.25 / 0.325, 0.03);
        TokenSampling.Next(z, 0, null, null, g).Should().OnlyContain(d => d == 1);
        TokenSampling.Next(z, -1, 3, 0.5, g).Should().OnlyContain(d => d == 1);
    }

    [Fact]
    public void TopKKeepsOnlyTheKMostLikelyFirstTokens()
    {
        using var lm = Lm("LRU");
        long[] prompt = ByteTokenizer.Encode("ab");
        using var logits = lm.forward(tensor(prompt, new long[] { 1, 2 }, ScalarType.Int64));
        var top3 = Row(logits[0, -1].topk(3).indexes).ToHashSet();
        for (long seed = 0; seed < 10; seed++)
            top3.Should().Contain(lm.Generate(new[] { prompt }, 1, topK: 3, seed: seed)[0][0]);
    }

    [Fact]
    public void ASequenceStopsAfterItsStopTokenAndTheTrainingFlagIsRestored()
    {
        using var lm = Lm("LRU");
        var greedy = lm.Generate(Prompts, 6, temperature: 0);
        long stop = greedy[0][2];
        lm.train();
        var stopped = lm.Generate(Prompts, 6, temperature: 0, stopToken: stop);
        lm.training.Should().BeTrue();
        lm.model.training.Should().BeTrue();
        for (int b = 0; b < Prompts.Length; b++)
        {
            int at = Array.IndexOf(greedy[b], stop);
            stopped[b].Should().Equal(at < 0 ? greedy[b] : greedy[b].Take(at + 1));
        }
        stopped[0].Should().HaveCount(Array.IndexOf(greedy[0], stop) + 1);
        lm.Generate(Prompts, 0).Should().OnlyContain(x => x.Length == 0);
    }

    [Fact]
    public void AFewAdamWStepsLowerTheLossOnATinyText()
    {
        using var lm = new CausalLM(V, new LRU(16, numBlocks: 2, stateDim: 8, dropRate: 0), tieWeights: true);
        var (tokens, lengths) = ByteTokenizer.EncodeBatch(new[] { "abababababab", "abcabc" }, appendEndOfText: true);
        using var opt = optim.AdamW(lm.parameters(), lr: 1e-2);
        double first = 0, last = 0;
        for (int step = 0; step < 30; step++)
        {
            using var scope = NewDisposeScope();
            opt.zero_grad();
            var loss = lm.Loss(tokens, lengths);
            loss.backward();
            opt.step();
            if (step == 0) first = loss.ToDouble();
            last = loss.ToDouble();
        }
        first.Should().BeApproximately(Math.Log(V), 0.5, "a fresh model is near uniform");
        last.Should().BeLessThan(first - 1.0);
        tokens.Dispose();
        lengths.Dispose();
    }

    [Fact]
    public void TiedWeightsShareTheEmbeddingAndSaveLoadGivesTheSameGeneration()
    {
        using var lm = Lm("MLSTM", tie: true);
        lm.lm_head.Should().BeNull();
        lm.TiedWeights.Should().BeTrue();
        using (var w = lm.OutputWeight)
        using (var e = lm.embeddings.weight!)
        using (no_grad())
        {
            double w00 = w[0, 0].ToDouble();
            e[0, 0].add_(1.0);
            w[0, 0].ToDouble().Should().Be(w00 + 1.0, "the head's weight is the embedding's storage");
            e[0, 0].sub_(1.0);
        }
        lm.state_dict().Keys.Should().Contain("embeddings.weight").And.NotContain(k => k.StartsWith("lm_head"));
        lm.parameters().Count(p => p.shape.SequenceEqual(new[] { V, 16L })).Should().Be(1, "one [V, H] parameter");
        // The head uses the embedding's storage: changing the embedding changes the logits by hand.
        using (var h = tensor(new long[] { 5, 6, 7 }, new long[] { 1, 3 }))
        using (var y = lm.forward(h))
        {
            using var w = lm.embeddings.weight!.detach().clone();
            using var hidden = y.clone();
            using (no_grad()) lm.embeddings.weight!.mul_(2);
            using var y2 = lm.forward(h);
            TestUtil.MaxAbsDiff(y2, y).Should().BeGreaterThan(0);
            using (no_grad()) lm.embeddings.weight!.copy_(w);
        }

        var before = lm.Generate(Prompts, 6, temperature: 0.9, topK: 50, seed: 11);
        using var ms = new MemoryStream();
        lm.save(new BinaryWriter(ms));
        ms.Position = 0;
        using var other = Lm("MLSTM", tie: true);
        other.load(new BinaryReader(ms));
        var after = other.Generate(Prompts, 6, temperature: 0.9, topK: 50, seed: 11);
        for (int b = 0; b < Prompts.Length; b++) after[b].Should().Equal(before[b]);
    }

    [Fact]
    public void BadArgumentsThrowNamingThem()
    {
        using var lm = Lm("LRU");
        void Throws(Action act, string name) => act.Should().Throw<ArgumentException>().Which.ParamName.Should().Be(name);
        var ok = new[] { new long[] { 1, 2 } };
        Throws(() => lm.Generate(Array.Empty<long[]>(), 3), "prompts");
        Throws(() => lm.Generate(new[] { new long[] { 1 }, Array.Empty<long>() }, 3), "prompts");
        Throws(() => lm.Generate(new[] { new long[] { 1, V } }, 3), "prompts");
        Throws(() => lm.Generate(new[] { new long[] { -1 } }, 3), "prompts");
        Throws(() => lm.Generate(ok, -1), "maxNewTokens");
        Throws(() => lm.Generate(ok, 3, temperature: double.NaN), "temperature");
        Throws(() => lm.Generate(ok, 3, topK: 0), "topK");
        Throws(() => lm.Generate(ok, 3, topP: 0), "topP");
        Throws(() => lm.Generate(ok, 3, topP: 1.5), "topP");
        Throws(() => lm.Generate(ok, 3, topP: double.NaN), "topP");
        Throws(() => lm.Generate(ok, 3, stopToken: V), "stopToken");

        using var good = tensor(new long[] { 1, 2, 3 }, new long[] { 1, 3 });
        using var big = tensor(new long[] { 1, V }, new long[] { 1, 2 });
        using var floats = tensor(new double[] { 1, 2 }, new long[] { 1, 2 });
        using var rank3 = zeros(new long[] { 1, 2, 3 }, ScalarType.Int64);
        using var one = tensor(new long[] { 1 }, new long[] { 1, 1 });
        using var badLengths = tensor(new long[] { 4 });
        using var ones = tensor(new long[] { 1 });
        Throws(() => lm.forward(big), "tokens");
        Throws(() => lm.forward(floats), "tokens");
        Throws(() => lm.forward(rank3), "tokens");
        Throws(() => lm.forward(good, badLengths), "lengths");
        Throws(() => lm.Loss(one), "tokens");
        Throws(() => lm.Loss(good, ones), "lengths");
        Throws(() => new CausalLM(0, Model("LRU")), "vocabSize");
        Throws(() => new CausalLM(V, Model("LRU"), (NormKind)99), "norm");
    }

    [Fact]
    public void ForwardLossAndGenerationLeaveOnlyTheirResultsInTheCallersScope()
    {
        using var lm = Lm("DeltaNet");
        using var tokens = tensor(new long[] { 1, 2, 3, 4, 5, 6 }, new long[] { 2, 3 });
        using var lengths = tensor(new long[] { 3, 2 });
        using (var scope = NewDisposeScope())
        {
            lm.forward(tokens, lengths);
            scope.DisposablesCount.Should().Be(1);
            lm.Loss(tokens, lengths);
            scope.DisposablesCount.Should().Be(2);
            lm.Generate(Prompts, 4, temperature: 0.8, topK: 10, topP: 0.9);
            scope.DisposablesCount.Should().Be(2);
        }
    }

    [Fact]
    public void TheDocsExampleRunsAndIsTheDocsCode()
    {
        var regions = DocSnippets.Regions(DocSnippets.ReadRepositoryFile("tests/Discretax.Tests/Models/CausalLMTests.cs"));
        var page = DocSnippets.MarkedBlocks(DocSnippets.ReadRepositoryFile("docs/variable-length.md"), "snippet");
        DocSnippets.Differences(page, regions, "docs/variable-length.md", "tests/Discretax.Tests/Models/CausalLMTests.cs").Should().BeNull();

        // snippet: language-model
        using var lm = new CausalLM(ByteTokenizer.VocabSize, new LRU(16, numBlocks: 2, stateDim: 8), tieWeights: true);
        using var opt = torch.optim.AdamW(lm.parameters(), lr: 1e-2);
        var (tokens, lengths) = ByteTokenizer.EncodeBatch(new[] { "hello world", "hi" }, appendEndOfText: true);
        for (int step = 0; step < 5; step++)
        {
            using var scope = torch.NewDisposeScope();
            opt.zero_grad();
            var loss = lm.Loss(tokens, lengths);   // next-token cross-entropy, padded steps ignored
            loss.backward();
            opt.step();
        }
        var prompts = new[] { ByteTokenizer.Encode("hel"), ByteTokenizer.Encode("h") };
        long[][] continuations = lm.Generate(prompts, maxNewTokens: 20, temperature: 0.8, topK: 40, seed: 1,
            stopToken: ByteTokenizer.EndOfText);
        string text = ByteTokenizer.Decode(prompts[0].Concat(continuations[0]));
        // end snippet

        tokens.Dispose();
        lengths.Dispose();
        continuations.Should().HaveCount(2);
        continuations.Should().OnlyContain(c => c.Length >= 1 && c.Length <= 20);
        text.Should().StartWith("hel");
    }
}
