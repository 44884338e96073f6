using Discretax.Heads;
using static TorchSharp.torch;

namespace Discretax.Tests.Heads;

public class HeadTests
{
    private static readonly double[] X = { 1, 2, 3, -1, 0, 1 }; // [L = 3, H = 2]

    /// <summary>Makes <paramref name="head"/> float64 with the reference weight and bias of the given salts.</summary>
    private static (double[,] W, double[] B) SetWeights(SequenceHead head, int weightSalt, int biasSalt)
    {
        head.to(ScalarType.Float64);
        var w = Reference.Matrix((int)head.OutFeatures, (int)head.InFeatures, weightSalt);
        var b = Reference.Vector((int)head.OutFeatures, biasSalt);
        Reference.Set(head.linear.weight!, Reference.ToTensor(w)); Reference.Set(head.linear.bias!, Reference.ToTensor(b));
        return (w, b);
    }

    [Fact]
    public void ClassificationHeadIsLogSoftmaxOfLinearOfTheTimeMean()
    {
        using var head = new ClassificationHead(2, 3);
        var (w, b) = SetWeights(head, 1, 2);
        using var y = head.forward(tensor(X, new long[] { 1, 3, 2 }, ScalarType.Float64));
        y.shape.Should().Equal(1, 3);
        var mean = new[] { (1.0 + 3 + 0) / 3, (2.0 - 1 + 1) / 3 };
        var z = Reference.Linear(mean, w, b);
        double lse = Math.Log(z.Sum(Math.Exp));
        var actual = TestUtil.Values(y);
        for (int i = 0; i < 3; i++) actual[i].Should().BeApproximately(z[i] - lse, 1e-14);
    }

    [Fact]
    public void WithoutReduceThereIsOnePredictionPerStep()
    {
        using var head = new ClassificationHead(2, 4, reduce: false);
        using var x = tensor(X.Select(v => (float)v).ToArray(), new long[] { 3, 2 });
        using var y = head.forward(x);
        y.shape.Should().Equal(3, 4);
        TestUtil.Values(y.exp().sum(1)).Should().OnlyContain(s => Math.Abs(s - 1) < 1e-6);
    }

    [Fact]
    public void RegressionHeadIsLinearOfTheTimeMean()
    {
        using var head = new RegressionHead(2, 1);
        var (w, b) = SetWeights(head, 3, 4);
        using var y = head.forward(tensor(X, new long[] { 3, 2 }, ScalarType.Float64));
        y.shape.Should().Equal(1);
        TestUtil.Values(y)[0].Should().BeApproximately(Reference.Linear(new[] { 4.0 / 3, 2.0 / 3 }, w, b)[0], 1e-14);
        using var perStep = new RegressionHead(2, 5, reduce: false);
        using var xs = zeros(2, 7, 2);
        using var ys = perStep.forward(xs);
        ys.shape.Should().Equal(2, 7, 5);
    }

    [Fact]
    public void BadInputThrowsNamingTheArgument()
    {
        using var head = new ClassificationHead(2, 3);
        using var wrong = zeros(1, 3, 5);
        var act = () => head.forward(wrong);
        act.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("x");
    }
}
