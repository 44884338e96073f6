using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Discretax.Kernels;

/// <summary>
/// What one linear scan <c>h_t = op(c_t, h_{t-1}) + x_t</c> states about itself for <see cref="ScanKernel{TLayout}"/>:
/// its validation, the canonical form of its coefficients, its three evaluations (the literal loop, the chunked
/// parallel tensor form, and the compiled CPU forward and reverse-scan backward). Inputs are <c>[B, L, ...]</c>,
/// states <c>[B, L, ...]</c>, the initial and final state <c>[B, ...]</c>.
/// </summary>
internal interface IScanLayout
{
    /// <summary>The kernel's name (error messages, the autograd node's name).</summary>
    static abstract string Name { get; }

    /// <summary>The name of the inputs argument (error messages).</summary>
    static abstract string InputsName { get; }

    /// <summary>Throws <see cref="ArgumentException"/> for shapes, dtypes or devices that do not fit together.</summary>
    static abstract void Validate(Tensor coefficients, Tensor inputs, Tensor? initialState);

    /// <summary>The coefficients in the canonical form the CPU kernel and the tensor forms expect (after the dtype promotion).</summary>
    static abstract Tensor Canonical(Tensor coefficients, Tensor inputs);

    /// <summary>The literal loop over time of tensor operations (differentiable by autograd).</summary>
    static abstract Tensor Recurrent(Tensor coefficients, Tensor inputs, Tensor? initialState);

    /// <summary>The chunked parallel-in-time tensor form (differentiable by autograd).</summary>
    static abstract Tensor Parallel(Tensor coefficients, Tensor inputs, Tensor? initialState, int chunkSize);

    /// <summary>The compiled CPU forward over contiguous CPU tensors: all states.</summary>
    static abstract Tensor CpuForward(Tensor coefficients, Tensor inputs, Tensor? initialState);

    /// <summary>The compiled CPU reverse scan: grad inputs, grad coefficients (canonical shape, or null), grad h0 (or null).</summary>
    static abstract (Tensor GradInputs, Tensor? GradCoefficients, Tensor? GradInitialState) CpuBackward(
        Tensor coefficients, Tensor gradStates, Tensor? states, Tensor? initialState, bool needCoefficients, bool needInitialState);

    /// <summary>
    /// Packed sequences (batch 1): canonical coefficients and inputs rewritten so that the plain scan from a zero
    /// state resets at every sequence start <c>t0</c> (int64 <paramref name="starts"/>): <c>c'_{t0} = 0</c> and
    /// <c>x'_{t0} = x_{t0} + op(c_{t0}, h0[n])</c> (only with a per-sequence <paramref name="initialState"/>
    /// <c>[N, ...]</c>); every other step unchanged. The coefficients come back time-varying.
    /// </summary>
    static abstract (Tensor Coefficients, Tensor Inputs) Reset(Tensor coefficients, Tensor inputs, Tensor starts, Tensor? initialState);
}

/// <summary>The three evaluations a scan offers.</summary>
internal enum ScanForm
{
    /// <summary>The dispatching entry: compiled CPU kernel on CPU, <see cref="Parallel"/> elsewhere.</summary>
    Scan,

    /// <summary>The literal loop.</summary>
    Recurrent,

    /// <summary>The chunked parallel tensor form.</summary>
    Parallel,
}

/// <summary>
/// The wrapper shared by <see cref="LinearScan"/> and <see cref="BlockScan2x2"/>: validation, float16/bfloat16
/// promotion to float32 (cast back at the end), canonical coefficients, dispatch between the forms (on CPU the
/// compiled kernel with the custom autograd function <see cref="ScanFunction{TLayout}"/>, elsewhere the parallel
/// tensor form), and the final state (a copy of the last step's state, owned by the caller).
/// </summary>
internal static class ScanKernel<TLayout> where TLayout : IScanLayout
{
    /// <summary>Default chunk length of the parallel form.</summary>
    internal const int DefaultChunkSize = 64;

    internal static (Tensor Output, Tensor FinalState) Run(ScanForm form, Tensor coefficients, Tensor inputs, Tensor? initialState,
        int chunkSize = DefaultChunkSize, KernelPath path = KernelPath.Auto, Tensor? cuSeqlens = null)
    {
        PackedSequences? packed = null;
        if (cuSeqlens is null)
        {
            TLayout.Validate(coefficients, inputs, initialState);
        }
        else
        {
            // Packed: the layout checks everything but the initial state, which is per sequence [N, ...].
            TLayout.Validate(coefficients, inputs, null);
            packed = PackedSequences.Validate(cuSeqlens, inputs.shape[0], inputs.shape[1], TLayout.InputsName);
            if (initialState is not null)
            {
                var rest = inputs.shape.Skip(2).ToArray();
                packed.CheckState(initialState, rest, "[sequences, " + string.Join(", ", rest) + "]");
                if (initialState.dtype != inputs.dtype)
                    throw new ArgumentException($"Expected initialState of the dtype of the inputs ({inputs.dtype}); got {initialState.dtype}.", nameof(initialState));
                if (initialState.device.ToString() != inputs.device.ToString())
                    throw new ArgumentException($"Expected initialState on the device of the inputs ({inputs.device}); got {initialState.device}.", nameof(initialState));
            }
        }
        Check.AtLeast(chunkSize, 1);
        using var scope = NewDisposeScope();
        var resultType = inputs.dtype;
        Tensor c = coefficients, x = inputs;
        Tensor? h0 = initialState;
        if (resultType is ScalarType.Float16 or ScalarType.BFloat16)
        {
            c = c.to_type(ScalarType.Float32);
            x = x.to_type(ScalarType.Float32);
            h0 = h0?.to_type(ScalarType.Float32);
        }
        c = TLayout.Canonical(c, x);
        if (packed is not null)
        {
            (c, x) = TLayout.Reset(c, x, packed.Starts(x.device), h0);
            h0 = null;
        }
        Tensor h;
        switch (form)
        {
            case ScanForm.Recurrent:
                h = TLayout.Recurrent(c, x, h0);
                break;
            case ScanForm.Parallel:
                h = TLayout.Parallel(c, x, h0, chunkSize);
                break;
            default:
                if (path == KernelPath.Auto && x.device_type == DeviceType.CPU)
                {
                    c = Resolve(c);
                    x = Resolve(x);
                    h0 = h0 is null ? null : Resolve(h0);
                    bool track = is_grad_enabled() && (c.requires_grad || x.requires_grad || (h0?.requires_grad ?? false));
                    h = track ? ScanFunction<TLayout>.apply(c, x, h0!) : TLayout.CpuForward(c, x, h0);
                }
                else
                {
                    h = TLayout.Parallel(c, x, h0, DefaultChunkSize);
                }
                break;
        }
        if (h.dtype != resultType) h = h.to_type(resultType);
        // A copy, not a view of the output: the caller owns and disposes the two independently. Packed: the state at
        // every sequence's last step, [N, ...] (index_select copies).
        var final = packed is null ? h.select(1, h.shape[1] - 1).clone() : h.select(0, 0).index_select(0, packed.Ends(h.device));
        return (h.MoveToOuterDisposeScope(), final.MoveToOuterDisposeScope());
    }

    /// <summary>Contiguous with conjugate and negative bits materialized, as the CPU kernels read raw memory.</summary>
    internal static Tensor Resolve(Tensor t)
    {
        if (t.is_complex()) t = t.resolve_conj();
        return t.resolve_neg().contiguous();
    }
}

/// <summary>
/// The custom autograd function around a scan's compiled CPU kernel: the forward is
/// <see cref="IScanLayout.CpuForward"/>, the backward the reverse scan <see cref="IScanLayout.CpuBackward"/>.
/// Called as <c>apply(coefficients, inputs, h0)</c> with canonical, contiguous, same-dtype CPU tensors (<c>h0</c> may
/// be null). Only the gradients of inputs that require one are computed. The backward owns and disposes its
/// temporaries, its unpacked saved tensors and the incoming gradient; the returned gradients are released through
/// <see cref="AutogradBuffers"/>, so nothing is left to the garbage collector without a caller's dispose scope.
/// </summary>
internal sealed class ScanFunction<TLayout> : SingleTensorFunction<ScanFunction<TLayout>> where TLayout : IScanLayout
{
    private sealed record Needs(bool Coefficients, bool Inputs, bool InitialState);

    /// <inheritdoc/>
    public override string Name => TLayout.Name + "Backward";

    /// <inheritdoc/>
    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        AutogradBuffers.Flush();
        var c = (Tensor)vars[0];
        var x = (Tensor)vars[1];
        var h0 = vars[2] as Tensor;
        var needs = new Needs(c.requires_grad, x.requires_grad, h0 is not null && h0.requires_grad);
        var h = TLayout.CpuForward(c, x, h0);
        // The coefficients are needed for every gradient; the states and h0 only for the coefficients' gradient.
        ctx.save_for_backward(new List<Tensor> { c, needs.Coefficients ? h : null!, needs.Coefficients ? h0! : null! });
        ctx.save_data("needs", needs);
        return h;
    }

    /// <inheritdoc/>
    public override List<Tensor> backward(AutogradContext ctx, Tensor grad_output)
    {
        AutogradBuffers.Flush();
        var needs = (Needs)ctx.get_data("needs");
        Tensor? gradC, gradX, gradH0;
        using (var scope = NewDisposeScope())
        {
            var saved = ctx.get_saved_variables();
            var g = ScanKernel<TLayout>.Resolve(grad_output);
            var (dx, dc, dh0) = TLayout.CpuBackward(saved[0], g, saved[1], saved[2], needs.Coefficients, needs.InitialState);
            gradX = needs.Inputs ? dx.MoveToOuterDisposeScope() : null;
            gradC = dc?.MoveToOuterDisposeScope();
            gradH0 = dh0?.MoveToOuterDisposeScope();
        }
        AutogradBuffers.Release(grad_output);
        return AutogradBuffers.Return(gradC, gradX, gradH0);
    }
}
