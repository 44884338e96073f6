using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Discretax.Kernels;

/// <summary>
/// The custom autograd function around the CPU kernel of <see cref="BlockScan2x2"/>: the forward is
/// <see cref="BlockScan2x2Cpu.Forward"/>, the backward the reverse scan <see cref="BlockScan2x2Cpu.Backward"/>.
/// Called as <c>BlockScan2x2Function.apply(m, f, h0)</c> with contiguous, same-dtype CPU tensors (<c>h0</c> may be
/// null). Only the gradients of inputs that require one are computed.
/// </summary>
internal sealed class BlockScan2x2Function : SingleTensorFunction<BlockScan2x2Function>
{
    private sealed record Needs(bool M, bool F, bool H0);

    /// <inheritdoc/>
    public override string Name => "BlockScan2x2Backward";

    /// <inheritdoc/>
    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var m = (Tensor)vars[0];
        var f = (Tensor)vars[1];
        var h0 = vars[2] as Tensor;
        var needs = new Needs(m.requires_grad, f.requires_grad, h0 is not null && h0.requires_grad);
        var h = BlockScan2x2Cpu.Forward(m, f, h0);
        // m is needed for every gradient; h and h0 only for the gradient of m.
        ctx.save_for_backward(new List<Tensor> { m, needs.M ? h : null!, needs.M ? h0! : null! });
        ctx.save_data("needs", needs);
        return h;
    }

    /// <inheritdoc/>
    public override List<Tensor> backward(AutogradContext ctx, Tensor grad_output)
    {
        var needs = (Needs)ctx.get_data("needs");
        Tensor? gradM, gradF, gradH0;
        using (var scope = NewDisposeScope())
        {
            var saved = ctx.get_saved_variables();
            var g = grad_output.resolve_neg().contiguous();
            var (df, dm, dh0) = BlockScan2x2Cpu.Backward(saved[0], g, saved[1], saved[2], needs.M, needs.H0);
            gradF = needs.F ? df.MoveToOuterDisposeScope() : null;
            gradM = dm?.MoveToOuterDisposeScope();
            gradH0 = dh0?.MoveToOuterDisposeScope();
        }
        var grads = new List<Tensor> { gradM!, gradF!, gradH0! };
        // Keep the managed wrappers reachable until the graph releases this node, after the engine took them.
        ctx.save_data("grads", grads);
        return grads;
    }
}
