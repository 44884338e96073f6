using static TorchSharp.torch;

namespace Discretax.Tests.Interop;

/// <summary>Paths of the PyTorch-made fixtures (tools/interop/make_fixtures.py) and helpers of the Interop tests.</summary>
internal static class InteropTestUtil
{
    /// <summary>The fixture folder in the test output.</summary>
    public static string Fixtures => Path.Combine(AppContext.BaseDirectory, "Fixtures", "interop");

    /// <summary>A fixture's path.</summary>
    public static string Fixture(params string[] parts) => Path.Combine([Fixtures, .. parts]);

    /// <summary>A fresh temporary folder for one test.</summary>
    public static string TempDir()
    {
        string d = Path.Combine(Path.GetTempPath(), "discretax-interop-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return d;
    }

    /// <summary>The values of an integer or boolean tensor as int64.</summary>
    public static long[] Longs(Tensor t)
    {
        using var d = t.to(ScalarType.Int64).contiguous();
        return d.data<long>().ToArray();
    }

    /// <summary>Whether two tensors have one dtype, one shape and equal values (bit for bit for finite values).</summary>
    public static bool Same(Tensor a, Tensor b) =>
        a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.eq(b.to(a.device)).all().item<bool>();

    /// <summary>The Linear(4, 6) -> LayerNorm(6) module of the fixtures, with PyTorch's names proj and norm.</summary>
    public static nn.Module<Tensor, Tensor> Tiny(string proj = "proj", string norm = "norm") =>
        nn.Sequential((proj, nn.Linear(4, 6)), (norm, nn.LayerNorm(6)));

    /// <summary>Fills every parameter of <paramref name="module"/> from a seeded generator.</summary>
    public static void Randomize(nn.Module module, ulong seed)
    {
        var g = new Generator(seed);
        using var noGrad = no_grad();
        foreach (var p in module.parameters()) p.copy_(randn(p.shape, generator: g));
    }
}
