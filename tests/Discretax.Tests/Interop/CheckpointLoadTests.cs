using Discretax.Interop;
using static Discretax.Tests.Interop.InteropTestUtil;
using static TorchSharp.torch;

namespace Discretax.Tests.Interop;

/// <summary>
/// <see cref="Checkpoint.Load"/>: strict loading fails once, listing every problem, and changes nothing; non-strict
/// loading reports what it left; the name map renames and skips; dtypes convert one way or the other; and
/// <see cref="Checkpoint.Save"/> then a load gives a module with identical outputs.
/// </summary>
public class CheckpointLoadTests
{
    /// <summary>The fixture's tiny module, for the values the tests compare with.</summary>
    private static Dictionary<string, Tensor> TinyWeights()
    {
        using var sd = SafeTensors.Read(Fixture("tiny", "model.safetensors"));
        return sd.ToDictionary(kv => kv.Key, kv => kv.Value.clone());
    }

    [Fact]
    public void StrictLoadThrowsOneExceptionListingEveryProblemAndChangesNothing()
    {
        using var scope = NewDisposeScope();
        var module = Tiny();
        var before = module.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        var tensors = new Dictionary<string, Tensor>
        {
            ["proj.weight"] = zeros(7, 4),                       // mis-shaped
            // proj.bias missing
            ["norm.weight"] = zeros([6], ScalarType.Int64),      // an integer tensor for a float parameter
            ["norm.bias"] = ones(6),                             // fine, but nothing is loaded when anything fails
            ["head.weight"] = zeros(3, 6),                       // unexpected
            ["step"] = zeros([1], ScalarType.Int64),             // unexpected
        };

        var act = () => Checkpoint.Load(module, tensors);
        var ex = act.Should().Throw<ArgumentException>().Which;
        ex.ParamName.Should().Be("tensors");
        ex.Message.Should().Contain("1 missing, 2 unexpected, 1 of another shape, 1 of an unconvertible dtype")
          .And.Contain("missing:    'proj.bias' [6] Float32")
          .And.Contain("shape:      'proj.weight' expects [6, 4], the checkpoint has [7, 4]")
          .And.Contain("dtype:      'norm.weight' is Float32, the checkpoint's tensor is Int64")
          .And.Contain("unexpected: 'head.weight' [3, 6] Float32")
          .And.Contain("unexpected: 'step' [1] Int64");
        foreach (var (name, t) in module.state_dict()) Same(t, before[name]).Should().BeTrue(name);
    }

    [Fact]
    public void NonStrictLoadListsMissingAndUnexpectedAndLoadsTheRest()
    {
        using var scope = NewDisposeScope();
        var module = Tiny();
        var weights = TinyWeights();
        var biasBefore = module.state_dict()["proj.bias"].clone();
        weights.Remove("proj.bias");
        weights["extra.weight"] = zeros(2);

        var result = Checkpoint.Load(module, weights, strict: false);
        result.Loaded.Should().Equal("proj.weight", "norm.weight", "norm.bias");
        result.Missing.Should().Equal("proj.bias");
        result.Unexpected.Should().Equal("extra.weight");
        result.Skipped.Should().BeEmpty();
        var sd = module.state_dict();
        Same(sd["proj.weight"], weights["proj.weight"]).Should().BeTrue();
        Same(sd["norm.bias"], weights["norm.bias"]).Should().BeTrue();
        Same(sd["proj.bias"], biasBefore).Should().BeTrue();
    }

    [Fact]
    public void NonStrictLoadStillRefusesShapeProblemsListingOnlyThem()
    {
        using var scope = NewDisposeScope();
        var weights = TinyWeights();
        weights["norm.bias"] = zeros(5);
        weights.Remove("proj.bias");
        var act = () => Checkpoint.Load(Tiny(), weights, strict: false);
        act.Should().Throw<ArgumentException>().Which.Message.Should()
           .Contain("1 of another shape").And.Contain("'norm.bias' expects [6], the checkpoint has [5]").And.NotContain("missing");
    }

    [Fact]
    public void NameMapTranslatesModuleNamesAndNullSkips()
    {
        using var scope = NewDisposeScope();
        var module = Tiny(proj: "linear", norm: "ln");
        var weights = TinyWeights();
        var lnBias = module.state_dict()["ln.bias"].clone();
        weights.Remove("norm.bias");
        var result = Checkpoint.Load(module, weights,
            nameMap: n => n == "ln.bias" ? null : n.Replace("linear.", "proj.").Replace("ln.", "norm."));
        result.Loaded.Should().Equal("linear.weight", "linear.bias", "ln.weight");
        result.Skipped.Should().Equal("ln.bias");
        Same(module.state_dict()["linear.weight"], weights["proj.weight"]).Should().BeTrue();
        Same(module.state_dict()["ln.bias"], lnBias).Should().BeTrue();

        // Without the map the names do not match: the strict error names the module's names and the map's result.
        var act = () => Checkpoint.Load(Tiny(proj: "linear"), weights, nameMap: n => "model." + n);
        act.Should().Throw<ArgumentException>().WithMessage("*'linear.weight' (checkpoint name 'model.linear.weight')*");
    }

    [Fact]
    public void HalfPrecisionCheckpointsConvertToTheModuleDTypeExactly()
    {
        using var scope = NewDisposeScope();
        var weights = TinyWeights().ToDictionary(kv => kv.Key, kv => kv.Value.to(ScalarType.BFloat16));
        weights["norm.bias"] = weights["norm.bias"].to(ScalarType.Float16);
        var module = Tiny();
        Checkpoint.Load(module, weights);
        foreach (var (name, t) in module.state_dict())
        {
            t.dtype.Should().Be(ScalarType.Float32);
            // bfloat16 and float16 values are float32 values: the widening is exact.
            TestUtil.Values(t).Should().Equal(TestUtil.Values(weights[name]), name);
        }
    }

    [Fact]
    public void CheckpointDTypeConvertsTheModuleToTheCheckpointsDType()
    {
        using var scope = NewDisposeScope();
        var weights = TinyWeights().ToDictionary(kv => kv.Key, kv => kv.Value.to(ScalarType.BFloat16));
        var module = Tiny();
        Checkpoint.Load(module, weights, dtype: CheckpointDType.Checkpoint);
        foreach (var (name, t) in module.state_dict())
        {
            t.dtype.Should().Be(ScalarType.BFloat16);
            Same(t, weights[name]).Should().BeTrue(name);
        }
        using var y = module.forward(randn([2, 4], generator: new Generator(3)).to(ScalarType.BFloat16));
        y.dtype.Should().Be(ScalarType.BFloat16);

        weights["norm.bias"] = weights["norm.bias"].to(ScalarType.Float32);
        var mixed = () => Checkpoint.Load(Tiny(), weights, dtype: CheckpointDType.Checkpoint);
        mixed.Should().Throw<ArgumentException>().WithMessage("*needs one floating dtype*BFloat16*Float32 ('norm.bias')*");
    }

    [Fact]
    public void BuffersLoadAndKeepTheirIntegerDType()
    {
        using var scope = NewDisposeScope();
        var module = nn.Sequential(("bn", nn.BatchNorm1d(3)));
        var tensors = new Dictionary<string, Tensor>
        {
            ["bn.weight"] = full(3, 2.0), ["bn.bias"] = full(3, -1.0),
            ["bn.running_mean"] = tensor(new[] { 0.5f, 1.5f, 2.5f }).to(ScalarType.Float64),
            ["bn.running_var"] = full(3, 4.0),
            ["bn.num_batches_tracked"] = tensor(7, ScalarType.Int32),   // int32 into the int64 buffer
        };
        var result = Checkpoint.Load(module, tensors);
        result.Loaded.Should().HaveCount(5);
        var sd = module.state_dict();
        sd["bn.num_batches_tracked"].dtype.Should().Be(ScalarType.Int64);
        Longs(sd["bn.num_batches_tracked"]).Should().Equal(7);
        TestUtil.Values(sd["bn.running_mean"]).Should().Equal(0.5, 1.5, 2.5);
    }

    [Fact]
    public void ExportThenReimportGivesIdenticalOutputs()
    {
        using var scope = NewDisposeScope();
        var module = Tiny(proj: "linear", norm: "ln");
        Randomize(module, 21);
        module.eval();
        string dir = TempDir();
        string path = Path.Combine(dir, "model.safetensors");
        Func<string, string?> toFile = n => "model." + n.Replace("linear.", "proj.").Replace("ln.", "norm.");
        Checkpoint.Save(module, path, toFile, new Dictionary<string, string> { ["source"] = "test" });

        using var read = SafeTensors.Read(path);
        read.Metadata.Should().Equal(new Dictionary<string, string> { ["format"] = "pt", ["source"] = "test" });
        read.Names.Should().BeEquivalentTo("model.proj.weight", "model.proj.bias", "model.norm.weight", "model.norm.bias");

        var again = Tiny(proj: "linear", norm: "ln");
        again.eval();
        Checkpoint.Load(again, read, toFile);
        var x = randn([2, 3, 4], generator: new Generator(22));
        Same(again.forward(x), module.forward(x)).Should().BeTrue();   // bit for bit
        Directory.Delete(dir, true);
    }

    [Fact]
    public void SaveRefusesTwoModuleTensorsUnderOneName()
    {
        using var scope = NewDisposeScope();
        var act = () => Checkpoint.Save(Tiny(), Path.Combine(Path.GetTempPath(), "never.safetensors"), n => n.Split('.')[1]);
        act.Should().Throw<ArgumentException>().WithMessage("*'proj.weight' and 'norm.weight' both map to 'weight'*")
           .Which.ParamName.Should().Be("nameMap");
    }

    [Fact]
    public void BadArgumentsAreRefusedNamingThem()
    {
        using var scope = NewDisposeScope();
        var noModule = () => Checkpoint.Load(null!, new Dictionary<string, Tensor>());
        noModule.Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("module");
        var noTensors = () => Checkpoint.Load(Tiny(), null!);
        noTensors.Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("tensors");
        var badDType = () => Checkpoint.Load(Tiny(), TinyWeights(), dtype: (CheckpointDType)7);
        badDType.Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("dtype");
    }
}

/// <summary>Loading into and saving from a module on CUDA (skipped without CUDA).</summary>
public class CheckpointCudaTests
{
    [SkippableFact]
    public void CpuCheckpointLoadsIntoACudaModuleAndSavesBack()
    {
        Skip.IfNot(cuda.is_available(), "CUDA is not available.");
        using var scope = NewDisposeScope();
        using var hf = HuggingFaceCheckpoint.Load(Fixture("tiny"));
        var module = Tiny();
        module.to(CUDA);
        Checkpoint.Load(module, hf.Tensors);
        foreach (var (name, t) in module.state_dict())
        {
            t.device_type.Should().Be(DeviceType.CUDA);
            Same(t.cpu(), hf.Tensors[name]).Should().BeTrue(name);
        }
        string dir = TempDir();
        string path = Path.Combine(dir, "cuda.safetensors");
        Checkpoint.Save(module, path);
        using var back = SafeTensors.Read(path);
        foreach (var (name, t) in hf.Tensors) Same(back[name], t).Should().BeTrue(name);
        Directory.Delete(dir, true);
    }
}
