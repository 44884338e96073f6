using Discretax.ChannelMixers;
using Discretax.Encoders;
using Discretax.Heads;
using Discretax.Layers;
using static TorchSharp.torch;

namespace Discretax.Tests.Utilities;

/// <summary>
/// The contracts every per-position ("leaf") module keeps, table-driven over one case per module configuration:
/// no module returns its input object; the dtype rule (docs/architecture.md, "Dtypes"); bad input is an
/// <see cref="ArgumentException"/> naming the argument before any native call.
/// </summary>
public class LeafModuleTests
{
    /// <summary>One configuration: the module, the name of its forward parameter, the shape of a valid input,
    /// and whether the input is a sequence <c>[B, L, H]</c> (rank 2 or 3 only) rather than <c>[..., H]</c>.</summary>
    private sealed record Case(Func<nn.Module<Tensor, Tensor>> Create, long[] Shape, string Arg = "x", bool Sequence = false, bool HasFloatParameters = true);

    private static readonly Dictionary<string, Case> Cases = new()
    {
        ["GLU"] = new(() => new GLU(4, outFeatures: 5), new long[] { 2, 3, 4 }),
        ["SwiGLU"] = new(() => new SwiGLU(4, intermediateDim: 6), new long[] { 2, 3, 4 }),
        ["GatedFeedForward"] = new(() => new GatedFeedForward(4, 6, bias: true), new long[] { 2, 3, 4 }),
        ["GatedFeedForwardFused"] = new(() => new GatedFeedForward(4, 6, Activation.SiLU, fused: true), new long[] { 2, 3, 4 }),
        ["MLPChannelMixer"] = new(() => new MLPChannelMixer(4, outFeatures: 3, useBias: true), new long[] { 2, 3, 4 }),
        ["IdentityChannelMixer"] = new(() => new IdentityChannelMixer(4), new long[] { 2, 3, 4 }, HasFloatParameters: false),
        ["LinearEncoder"] = new(() => new LinearEncoder(4, 6, useBias: true), new long[] { 2, 3, 4 }, Sequence: true),
        ["ClassificationHead"] = new(() => new ClassificationHead(4, 3), new long[] { 2, 3, 4 }, Sequence: true),
        ["ClassificationHeadPerStep"] = new(() => new ClassificationHead(4, 3, reduce: false), new long[] { 2, 3, 4 }, Sequence: true),
        ["RegressionHead"] = new(() => new RegressionHead(4, 2), new long[] { 2, 3, 4 }, Sequence: true),
        ["RMSNorm"] = new(() => Gains(new RMSNorm(4)), new long[] { 2, 3, 4 }),
        ["RMSNormNoAffine"] = new(() => new RMSNorm(4, elementwiseAffine: false), new long[] { 2, 3, 4 }, HasFloatParameters: false),
        ["MultiHeadLayerNorm"] = new(() => Gains(new MultiHeadNorm(2, 3)), new long[] { 2, 3, 2, 3 }),
        ["MultiHeadRmsNorm"] = new(() => Gains(new MultiHeadNorm(2, 3, useRms: true)), new long[] { 2, 3, 2, 3 }),
        ["LinearHeadwiseExpand"] = new(() => new LinearHeadwiseExpand(4, 2, outFeatures: 6, useBias: true), new long[] { 2, 3, 4 }),
        ["FastDropoutEval"] = new(() => Eval(new FastDropout(0.3)), new long[] { 2, 3, 4 }, Arg: "input", HasFloatParameters: false),
        ["FastDropoutZero"] = new(() => new FastDropout(0.0), new long[] { 2, 3, 4 }, Arg: "input", HasFloatParameters: false),
    };

    public static TheoryData<string> CaseNames => new(Cases.Keys);

    public static TheoryData<string> ParameterizedCaseNames => new(Cases.Where(c => c.Value.HasFloatParameters).Select(c => c.Key));

    /// <summary>Gains that are not all 1, so that a norm's weight takes part in the dtype checks.</summary>
    private static T Gains<T>(T norm) where T : nn.Module
    {
        using var noGrad = no_grad();
        foreach (var p in norm.parameters()) p.copy_(linspace(0.5, 1.5, p.numel()).view(p.shape));
        return norm;
    }

    private static T Eval<T>(T m) where T : nn.Module
    {
        m.eval();
        return m;
    }

    private static Tensor Input(Case c, ScalarType dtype, ulong seed = 11) =>
        TestUtil.Randn(new Generator(seed), c.Shape, ScalarType.Float32).to(dtype);

    private static bool BitIdentical(Tensor a, Tensor b) =>
        a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.equal(b).all().item<bool>();

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void NeverReturnsItsInputObject(string name)
    {
        var c = Cases[name];
        using var m = c.Create();
        using var x = Input(c, ScalarType.Float32);
        using var y = m.forward(x);
        ReferenceEquals(x, y).Should().BeFalse("Sequential disposes what a module returns");
    }

    [Fact]
    public void SequentialOfEncoderDropoutAndHeadRunsInEvalAndTrainMode()
    {
        using var seq = nn.Sequential(("enc", new LinearEncoder(2, 16)), ("drop", new FastDropout(0.1)), ("head", new ClassificationHead(16, 3)));
        using var x = TestUtil.Randn(new Generator(3), new long[] { 4, 5, 2 }, ScalarType.Float32);
        foreach (bool training in new[] { false, true })
        {
            seq.train(training);
            using var y = seq.forward(x);
            y.shape.Should().Equal(4, 3);
            x.IsInvalid.Should().BeFalse("the caller's input survives");
        }
    }

    [Fact]
    public void SequentialOfIdentityAndNormsRunsInEvalMode()
    {
        using var seq = nn.Sequential(("id", new IdentityChannelMixer(4)), ("drop", new FastDropout(0.0)), ("norm", new RMSNorm(4)), ("id2", new IdentityChannelMixer(4)));
        seq.eval();
        using var x = TestUtil.Randn(new Generator(4), new long[] { 2, 3, 4 }, ScalarType.Float32);
        using var y = seq.forward(x);
        y.shape.Should().Equal(2, 3, 4);
        x.IsInvalid.Should().BeFalse();
    }

    /// <summary>A float32 module given float64, bfloat16 or float16 input computes in float32: its output is
    /// bit-identical to the output of the input cast to float32, cast back to the input's dtype.</summary>
    [Theory]
    [MemberData(nameof(ParameterizedCaseNames))]
    public void Float32ModuleComputesInFloat32ForOtherFloatingInputs(string name)
    {
        var c = Cases[name];
        using var m = Eval(c.Create());
        foreach (var dtype in new[] { ScalarType.Float64, ScalarType.BFloat16, ScalarType.Float16 })
        {
            using var scope = NewDisposeScope();
            var x = Input(c, dtype);
            var y = m.forward(x);
            y.dtype.Should().Be(dtype);
            var expected = m.forward(x.to(ScalarType.Float32)).to(dtype);
            BitIdentical(y, expected).Should().BeTrue($"{name} with {dtype} input computes in float32 (bit-identical)");
        }
    }

    /// <summary>A bfloat16 module keeps working on bfloat16 input (within relative RMS 3e-2 of the float32
    /// computation with the same bfloat16-valued weights: bfloat16 keeps 8 significant bits) and casts a float32
    /// input to bfloat16 (bit-identical to casting it first).</summary>
    [Theory]
    [MemberData(nameof(ParameterizedCaseNames))]
    public void BFloat16ModuleComputesInBFloat16(string name)
    {
        var c = Cases[name];
        using var m = Eval(c.Create());
        m.to(ScalarType.BFloat16);
        using var scope = NewDisposeScope();
        var xb = Input(c, ScalarType.BFloat16);
        var yb = m.forward(xb);
        yb.dtype.Should().Be(ScalarType.BFloat16);
        var x32 = xb.to(ScalarType.Float32);
        var y32 = m.forward(x32);
        y32.dtype.Should().Be(ScalarType.Float32);
        BitIdentical(y32, yb.to(ScalarType.Float32)).Should().BeTrue("a float32 input is cast to the module's bfloat16");
        m.to(ScalarType.Float32);
        TestUtil.RelRms(yb, m.forward(x32)).Should().BeLessThan(3e-2);
    }

    /// <summary>A module without floating parameters computes in the input's dtype.</summary>
    [Fact]
    public void ParameterlessModulesComputeInTheInputDtype()
    {
        using var scope = NewDisposeScope();
        var x = TestUtil.Randn(new Generator(5), new long[] { 2, 3, 4 });
        x.dtype.Should().Be(ScalarType.Float64);
        foreach (var name in new[] { "IdentityChannelMixer", "FastDropoutEval", "FastDropoutZero" })
            BitIdentical(Cases[name].Create().forward(x), x).Should().BeTrue(name);
        var rms = new RMSNorm(4, elementwiseAffine: false).forward(x);
        rms.dtype.Should().Be(ScalarType.Float64);
        var expected = x / (x.square().mean(new long[] { -1 }, keepdim: true) + 1e-6).sqrt();
        TestUtil.MaxAbsDiff(rms, expected).Should().BeLessThan(1e-14, "computed in float64");
    }

    /// <summary>The bad inputs of a case: (label, input). Every one must throw an ArgumentException naming the
    /// forward argument, with the expected form and what came.</summary>
    private static IEnumerable<(string Label, Tensor Input)> BadInputs(Case c)
    {
        long[] s = c.Shape;
        long h = s[^1];
        yield return ("batch 0", zeros(s.Select((d, i) => i == 0 ? 0L : d).ToArray()));
        yield return ("length 0", zeros(s.Select((d, i) => i == 1 ? 0L : d).ToArray()));
        yield return ("int64", zeros(s, dtype: ScalarType.Int64));
        yield return ("int32", zeros(s, dtype: ScalarType.Int32));
        yield return ("bool", zeros(s, dtype: ScalarType.Bool));
        yield return ("complex", zeros(s, dtype: ScalarType.ComplexFloat32));
        if (c.Arg == "input") yield break; // dropout is elementwise: any non-empty floating shape is valid
        yield return ("rank 0", tensor(1.0f));
        yield return ("wrong features", zeros(s.Select((d, i) => i == s.Length - 1 ? d + 1 : d).ToArray()));
        if (c.Sequence)
        {
            yield return ("rank 1", zeros(h));
            yield return ("rank 4", zeros(2, 2, 3, h));
        }
        if (s.Length == 4) // [..., NH, D]
        {
            yield return ("rank 1", zeros(h));
            yield return ("wrong heads", zeros(2, 3, s[2] + 1, h));
        }
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void BadInputThrowsNamingTheArgument(string name)
    {
        var c = Cases[name];
        using var m = c.Create();
        foreach (bool training in new[] { true, false })
        {
            if (name == "FastDropoutEval" && training) continue; // its case is the eval mode
            m.train(training);
            foreach (var (label, bad) in BadInputs(c))
            {
                using var _ = bad;
                var act = () => m.forward(bad);
                act.Should().Throw<ArgumentException>($"{name}, {label}, training {training}")
                    .Where(e => e.ParamName == c.Arg && e.Message.Contains("Expected") && e.Message.Contains("got"),
                        $"{name}, {label}: the error names {c.Arg}, what was expected and what came");
            }
        }
    }

    /// <summary>A module with parameters refuses an input on another device (here the meta device, which every
    /// libtorch build has) with an ArgumentException naming the argument, before libtorch sees the mix.</summary>
    [SkippableTheory]
    [MemberData(nameof(ParameterizedCaseNames))]
    public void InputOnAnotherDeviceThrowsNamingTheArgument(string name)
    {
        var c = Cases[name];
        Tensor x;
        try { x = empty(c.Shape, device: new Device(DeviceType.META)); }
        catch (Exception e) { throw new SkipException($"no meta device here: {e.Message}"); }
        using var _ = x;
        using var m = c.Create();
        var act = () => m.forward(x);
        act.Should().Throw<ArgumentException>().Where(e => e.ParamName == c.Arg && e.Message.Contains("device"));
    }

    [SkippableFact]
    public void EmbeddingEncoderRefusesIdsOnAnotherDevice()
    {
        Tensor ids;
        try { ids = zeros(new long[] { 2, 3 }, dtype: ScalarType.Int64, device: new Device(DeviceType.META)); }
        catch (Exception e) { throw new SkipException($"no meta device here: {e.Message}"); }
        using var _ = ids;
        using var enc = new EmbeddingEncoder(5, 3);
        var act = () => enc.forward(ids);
        act.Should().Throw<ArgumentException>().Where(e => e.ParamName == "ids" && e.Message.Contains("device"));
    }

    [Fact]
    public void FastDropoutInTrainModeRefusesIntegerInput()
    {
        using var drop = new FastDropout(0.5);
        drop.train();
        using var ids = ones(new long[] { 4, 4 }, dtype: ScalarType.Int64);
        var act = () => drop.forward(ids);
        act.Should().Throw<ArgumentException>().WithParameterName("input").WithMessage("*floating-point*Int64*");
    }

    [Fact]
    public void EmbeddingEncoderBadIdsThrowNamingTheArgument()
    {
        using var enc = new EmbeddingEncoder(5, 3);
        var bad = new (string Label, Tensor Ids)[]
        {
            ("batch 0", zeros(new long[] { 0, 4 }, dtype: ScalarType.Int64)),
            ("length 0", zeros(new long[] { 2, 0 }, dtype: ScalarType.Int64)),
            ("unbatched length 0", zeros(new long[] { 0 }, dtype: ScalarType.Int64)),
            ("rank 0", tensor(1L)),
            ("rank 3", zeros(new long[] { 2, 3, 1 }, dtype: ScalarType.Int64)),
            ("float", zeros(new long[] { 2, 3 })),
            ("bool", zeros(new long[] { 2, 3 }, dtype: ScalarType.Bool)),
            ("negative", full(new long[] { 2, 3 }, -1L, dtype: ScalarType.Int64)),
            ("too large", full(new long[] { 2, 3 }, 5L, dtype: ScalarType.Int64)),
        };
        foreach (var (label, ids) in bad)
        {
            using var _ = ids;
            var act = () => enc.forward(ids);
            act.Should().Throw<ArgumentException>(label)
                .Where(e => e.ParamName == "ids" && e.Message.Contains("Expected") && e.Message.Contains("got"), label);
        }
    }

    [Fact]
    public void EmbeddingEncoderOutputHasTheEmbeddingsDtype()
    {
        using var enc = new EmbeddingEncoder(5, 3);
        using var ids = tensor(new int[] { 1, 4, 0 }, new long[] { 1, 3 });
        using var y = enc.forward(ids);
        y.dtype.Should().Be(ScalarType.Float32);
        enc.to(ScalarType.BFloat16);
        using var yb = enc.forward(ids);
        yb.dtype.Should().Be(ScalarType.BFloat16);
        ReferenceEquals(enc.forward(ids), ids).Should().BeFalse();
    }

    /// <summary>Each constructor's error names the parameter the caller wrote.</summary>
    public static TheoryData<string, string> ConstructorCases => new()
    {
        { "GLU(0)", "inFeatures" }, { "GLU(3, outFeatures: 0)", "outFeatures" },
        { "SwiGLU(0)", "inFeatures" }, { "SwiGLU(3, hiddenRatio: 0)", "hiddenRatio" },
        { "SwiGLU(3, hiddenRatio: NaN)", "hiddenRatio" }, { "SwiGLU(3, hiddenRatio: +inf)", "hiddenRatio" },
        { "SwiGLU(3, intermediateDim: 0)", "intermediateDim" }, { "SwiGLU(3, outFeatures: 0)", "outFeatures" },
        { "SwiGLU.DefaultIntermediateDim(0, 4)", "inFeatures" }, { "SwiGLU.DefaultIntermediateDim(3, -1)", "hiddenRatio" },
        { "SwiGLU.DefaultIntermediateDim(3, 1e300)", "hiddenRatio" },
        { "GatedFeedForward(0, 4)", "inFeatures" }, { "GatedFeedForward(3, 0)", "upProjDim" },
        { "GatedFeedForward(3, 4, activation: 99)", "activation" }, { "GatedFeedForward(3, 4, numBlocks: 0)", "numBlocks" },
        { "GatedFeedForward(3, 4, outputInitFn: 9)", "outputInitFn" },
        { "GatedFeedForward.UpProjDim(0, 1.3)", "embeddingDim" }, { "GatedFeedForward.UpProjDim(8, NaN)", "projFactor" },
        { "GatedFeedForward.UpProjDim(8, 1.3, 0)", "multipleOf" },
        { "MLPChannelMixer(0)", "inFeatures" }, { "MLPChannelMixer(3, outFeatures: 0)", "outFeatures" },
        { "MLPChannelMixer(3, nonLinearity: 99)", "nonLinearity" },
        { "IdentityChannelMixer(0)", "inFeatures" }, { "IdentityChannelMixer(3, 0)", "outFeatures" }, { "IdentityChannelMixer(3, 4)", "outFeatures" },
        { "LinearEncoder(0, 2)", "inFeatures" }, { "LinearEncoder(2, 0)", "outFeatures" },
        { "EmbeddingEncoder(0, 2)", "numClasses" }, { "EmbeddingEncoder(2, 0)", "outFeatures" },
        { "ClassificationHead(0, 2)", "inFeatures" }, { "ClassificationHead(2, 0)", "outFeatures" },
        { "RegressionHead(0, 2)", "inFeatures" }, { "RegressionHead(2, 0)", "outFeatures" },
        { "RMSNorm(0)", "dim" }, { "RMSNorm(4, eps: 0)", "eps" }, { "RMSNorm(4, eps: NaN)", "eps" }, { "RMSNorm(4, eps: +inf)", "eps" },
        { "MultiHeadNorm(0, 2)", "numHeads" }, { "MultiHeadNorm(2, 0)", "headDim" }, { "MultiHeadNorm(2, 2, eps: -1)", "eps" },
        { "MultiHeadNorm(2, 2, eps: +inf)", "eps" },
        { "LinearHeadwiseExpand(0, 1)", "inFeatures" }, { "LinearHeadwiseExpand(4, 0)", "numHeads" },
        { "LinearHeadwiseExpand(4, 3)", "numHeads" }, { "LinearHeadwiseExpand(2, 4)", "numHeads" },
        { "LinearHeadwiseExpand(4, 2, outFeatures: 0)", "outFeatures" }, { "LinearHeadwiseExpand(4, 2, outFeatures: 3)", "outFeatures" },
        { "FastDropout(-0.1)", "p" }, { "FastDropout(1)", "p" }, { "FastDropout(NaN)", "p" },
    };

    private static readonly Dictionary<string, Func<object>> Constructors = new()
    {
        ["GLU(0)"] = () => new GLU(0), ["GLU(3, outFeatures: 0)"] = () => new GLU(3, outFeatures: 0),
        ["SwiGLU(0)"] = () => new SwiGLU(0), ["SwiGLU(3, hiddenRatio: 0)"] = () => new SwiGLU(3, hiddenRatio: 0),
        ["SwiGLU(3, hiddenRatio: NaN)"] = () => new SwiGLU(3, hiddenRatio: double.NaN),
        ["SwiGLU(3, hiddenRatio: +inf)"] = () => new SwiGLU(3, hiddenRatio: double.PositiveInfinity),
        ["SwiGLU(3, intermediateDim: 0)"] = () => new SwiGLU(3, intermediateDim: 0),
        ["SwiGLU(3, outFeatures: 0)"] = () => new SwiGLU(3, outFeatures: 0),
        ["SwiGLU.DefaultIntermediateDim(0, 4)"] = () => SwiGLU.DefaultIntermediateDim(0, 4),
        ["SwiGLU.DefaultIntermediateDim(3, -1)"] = () => SwiGLU.DefaultIntermediateDim(3, -1),
        ["SwiGLU.DefaultIntermediateDim(3, 1e300)"] = () => SwiGLU.DefaultIntermediateDim(3, 1e300),
        ["GatedFeedForward(0, 4)"] = () => new GatedFeedForward(0, 4), ["GatedFeedForward(3, 0)"] = () => new GatedFeedForward(3, 0),
        ["GatedFeedForward(3, 4, activation: 99)"] = () => new GatedFeedForward(3, 4, (Activation)99),
        ["GatedFeedForward(3, 4, numBlocks: 0)"] = () => new GatedFeedForward(3, 4, numBlocks: 0),
        ["GatedFeedForward(3, 4, outputInitFn: 9)"] = () => new GatedFeedForward(3, 4, outputInitFn: (Discretax.SequenceMixers.MLSTMOutputInit)9),
        ["GatedFeedForward.UpProjDim(0, 1.3)"] = () => GatedFeedForward.UpProjDim(0, 1.3),
        ["GatedFeedForward.UpProjDim(8, NaN)"] = () => GatedFeedForward.UpProjDim(8, double.NaN),
        ["GatedFeedForward.UpProjDim(8, 1.3, 0)"] = () => GatedFeedForward.UpProjDim(8, 1.3, 0),
        ["MLPChannelMixer(0)"] = () => new MLPChannelMixer(0), ["MLPChannelMixer(3, outFeatures: 0)"] = () => new MLPChannelMixer(3, outFeatures: 0),
        ["MLPChannelMixer(3, nonLinearity: 99)"] = () => new MLPChannelMixer(3, nonLinearity: (Activation)99),
        ["IdentityChannelMixer(0)"] = () => new IdentityChannelMixer(0), ["IdentityChannelMixer(3, 0)"] = () => new IdentityChannelMixer(3, 0),
        ["IdentityChannelMixer(3, 4)"] = () => new IdentityChannelMixer(3, 4),
        ["LinearEncoder(0, 2)"] = () => new LinearEncoder(0, 2), ["LinearEncoder(2, 0)"] = () => new LinearEncoder(2, 0),
        ["EmbeddingEncoder(0, 2)"] = () => new EmbeddingEncoder(0, 2), ["EmbeddingEncoder(2, 0)"] = () => new EmbeddingEncoder(2, 0),
        ["ClassificationHead(0, 2)"] = () => new ClassificationHead(0, 2), ["ClassificationHead(2, 0)"] = () => new ClassificationHead(2, 0),
        ["RegressionHead(0, 2)"] = () => new RegressionHead(0, 2), ["RegressionHead(2, 0)"] = () => new RegressionHead(2, 0),
        ["RMSNorm(0)"] = () => new RMSNorm(0), ["RMSNorm(4, eps: 0)"] = () => new RMSNorm(4, eps: 0),
        ["RMSNorm(4, eps: NaN)"] = () => new RMSNorm(4, eps: double.NaN),
        ["RMSNorm(4, eps: +inf)"] = () => new RMSNorm(4, eps: double.PositiveInfinity),
        ["MultiHeadNorm(0, 2)"] = () => new MultiHeadNorm(0, 2), ["MultiHeadNorm(2, 0)"] = () => new MultiHeadNorm(2, 0),
        ["MultiHeadNorm(2, 2, eps: -1)"] = () => new MultiHeadNorm(2, 2, eps: -1),
        ["MultiHeadNorm(2, 2, eps: +inf)"] = () => new MultiHeadNorm(2, 2, eps: double.PositiveInfinity),
        ["LinearHeadwiseExpand(0, 1)"] = () => new LinearHeadwiseExpand(0, 1), ["LinearHeadwiseExpand(4, 0)"] = () => new LinearHeadwiseExpand(4, 0),
        ["LinearHeadwiseExpand(4, 3)"] = () => new LinearHeadwiseExpand(4, 3), ["LinearHeadwiseExpand(2, 4)"] = () => new LinearHeadwiseExpand(2, 4),
        ["LinearHeadwiseExpand(4, 2, outFeatures: 0)"] = () => new LinearHeadwiseExpand(4, 2, outFeatures: 0),
        ["LinearHeadwiseExpand(4, 2, outFeatures: 3)"] = () => new LinearHeadwiseExpand(4, 2, outFeatures: 3),
        ["FastDropout(-0.1)"] = () => new FastDropout(-0.1), ["FastDropout(1)"] = () => new FastDropout(1), ["FastDropout(NaN)"] = () => new FastDropout(double.NaN),
    };

    [Theory]
    [MemberData(nameof(ConstructorCases))]
    public void ConstructorErrorsNameTheCallersParameter(string call, string paramName)
    {
        var act = () => Constructors[call]();
        act.Should().Throw<ArgumentException>(call).Which.ParamName.Should().Be(paramName, call);
    }
}
