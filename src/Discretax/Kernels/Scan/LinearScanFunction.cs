using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Discretax.Kernels;

/// <summary>
/// The custom autograd function around the CPU kernel of <see cref="LinearScan"/>: the forward is
/// <see cref="LinearScanCpu.Forward"/>, the backward the reverse scan <see cref="LinearScanCpu.Backward"/>.
/// Called as <c>LinearScanFunction.apply(a, b, h0)</c> with canonical, contiguous, same-dtype CPU tensors
/// (<c>h0</c> may be null). Only the gradients of inputs that require one are computed.
/// </summary>
internal sealed class LinearScanFunction : SingleTensorFunction<LinearScanFunction>
{
    private sealed record Needs(bool A, bool B, bool H0);

    /// <inheritdoc/>
    public override string Name => "LinearScanBackward";

    /// <inheritdoc/>
    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var a = (Tensor)vars[0];
        var b = (Tensor)vars[1];
        var h0 = vars[2] as Tensor;
        var needs = new Needs(a.requires_grad, b.requires_grad, h0 is not null && h0.requires_grad);
        var h = LinearScanCpu.Forward(a, b, h0);
        // a is needed for every gradient; h and h0 only for the gradient of a.
        ctx.save_for_backward(new List<Tensor> { a, needs.A ? h : null!, needs.A ? h0! : null! });
        ctx.save_data("needs", needs);
        return h;
    }

    /// <inheritdoc/>
    public override List<Tensor> backward(AutogradContext ctx, Tensor grad_output)
    {
        var needs = (Needs)ctx.get_data("needs");
        Tensor? gradA, gradB, gradH0;
        using (var scope = NewDisposeScope())
        {
            var saved = ctx.get_saved_variables();
            var a = saved[0];
            var h = saved[1];
            var h0 = saved[2];
            var g = grad_output.resolve_conj().resolve_neg().contiguous();
            var (db, da, dh0) = LinearScanCpu.Backward(a, g, h, h0, needs.A, needs.H0);
            gradB = needs.B ? db.MoveToOuterDisposeScope() : null;
            gradA = da?.MoveToOuterDisposeScope();
            gradH0 = dh0?.MoveToOuterDisposeScope();
        }
        var grads = new List<Tensor> { gradA!, gradB!, gradH0! };
        // Keep the managed wrappers reachable until the graph releases this node, after the engine took them.
        ctx.save_data("grads", grads);
        return grads;
    }
}
