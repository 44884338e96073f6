using static TorchSharp.torch;

namespace Discretax.Tests.Build;

public class TorchLoadTests
{
    [Fact]
    public void TorchSharpInitializesAndComputesInTheTestProcess()
    {
        // 2x2 matmul with a hand-computed result: [[1,2],[3,4]] @ [[5,6],[7,8]] = [[19,22],[43,50]].
        using var a = tensor(new double[] { 1, 2, 3, 4 }).reshape(2, 2);
        using var b = tensor(new double[] { 5, 6, 7, 8 }).reshape(2, 2);
        using var c = a.matmul(b);
        c.data<double>().ToArray().Should().Equal(19, 22, 43, 50);
    }
}
