using Discretax.Streaming;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests.Streaming;

/// <summary>The typed states: construction checks, moving, detaching.</summary>
public class StateTests
{
    private const long B = 2, NH = 3, Dk = 4, Dv = 5;

    [Fact]
    public void StateMovesDetachesAndKeepsItsType()
    {
        using var scope = NewDisposeScope();
        var s = new MLSTMState(TestUtil.Randn(new Generator(1100), new long[] { B, NH, Dk, Dv }), TestUtil.Randn(new Generator(1101), new long[] { B, NH, Dk }), TestUtil.Randn(new Generator(1102), new long[] { B, NH }), ScalarType.Float64);
        using var moved = (MLSTMState)s.To(CPU);
        moved.Should().BeOfType<MLSTMState>();
        TestUtil.MaxAbsDiff(moved.C, s.C).Should().Be(0);
        var withGrad = new MLSTMState(s.C.clone().requires_grad_(true), s.N.clone(), s.M.clone(), ScalarType.Float64);
        using var detached = (MLSTMState)withGrad.Detach();
        detached.C.requires_grad.Should().BeFalse();
        detached.BatchSize.Should().Be(B);
        detached.NumHeads.Should().Be(NH);
        detached.KeyDim.Should().Be(Dk);
        detached.ValueDim.Should().Be(Dv);
        s.Tensors.Keys.Should().BeEquivalentTo(new[] { "C", "n", "m" });
        withGrad.Dispose();
        s.Dispose();
    }

    [Fact]
    public void StateConstructorRejectsInconsistentShapes()
    {
        using var scope = NewDisposeScope();
        var c = zeros(2, 3, 4, 5, dtype: ScalarType.Float64);
        FluentActions.Invoking(() => new MLSTMState(c, zeros(2, 3, 5, dtype: ScalarType.Float64), zeros(2, 3, dtype: ScalarType.Float64), ScalarType.Float64))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be("n");
        FluentActions.Invoking(() => new MLSTMState(c, zeros(2, 3, 4, dtype: ScalarType.Float64), zeros(2, 2, dtype: ScalarType.Float64), ScalarType.Float64))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be("m");
        FluentActions.Invoking(() => new MLSTMState(zeros(2, 3, 4, dtype: ScalarType.Float64), zeros(2, 3, 4, dtype: ScalarType.Float64), zeros(2, 3, dtype: ScalarType.Float64), ScalarType.Float64))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be("c");
        FluentActions.Invoking(() => new MLSTMState(c, zeros(2, 3, 4, dtype: ScalarType.Float64), zeros(new long[] { 2, 3 }, dtype: ScalarType.Int64), ScalarType.Float64))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be("m");
    }

}
