using Discretax.Blocks;
using Discretax.SequenceMixers;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Models;

/// <summary>
/// fla's <c>Mamba2ForCausalLM</c> (<c>fla/models/mamba2/modeling_mamba2.py</c>): a <see cref="FlaForCausalLM"/> (logits,
/// loss, packed loss, streaming generation) with fla's Mamba2 tree, built from a <see cref="Mamba2Config"/>:
/// <code>
/// h      = backbone.embeddings(tokens)                 nn.Embedding V x H (no padding row)
/// h      = h + mixer(norm(h))                           per layer: backbone.layers.i (a Mamba2Block), RMSNorm eps norm_eps,
///                                                       mixer a Mamba2SequenceMixer (fla's Mamba2 layer); residual in
///                                                       float32 (residual_in_fp32); no feed-forward
/// h      = backbone.norm_f(h)                          RMSNorm eps norm_eps
/// logits = lm_head(h)                                  Linear H -> V, no bias; tied: backbone.embeddings.weight
/// </code>
/// <para>Keys, as fla's <c>state_dict()</c>: <c>backbone.embeddings.weight</c>, <c>backbone.layers.{i}.norm.weight</c>,
/// <c>backbone.layers.{i}.mixer.{dt_bias, A_log, D}</c>, <c>backbone.layers.{i}.mixer.in_proj.weight</c> (<c>.bias</c>
/// with <c>use_bias</c>), <c>backbone.layers.{i}.mixer.conv1d.weight</c> (<c>.bias</c> with <c>use_conv_bias</c>),
/// <c>backbone.layers.{i}.mixer.norm.weight</c> (with <c>rmsnorm</c>), <c>backbone.layers.{i}.mixer.out_proj.weight</c>
/// (<c>.bias</c>), <c>backbone.norm_f.weight</c>, <c>lm_head.weight</c> (absent when tied). The layer lists
/// <c>in_proj</c> before <c>conv1d</c> (mamba_ssm's order; fla registers <c>conv1d</c> first): the same names, another
/// order, which loading and saving ignore.</para>
/// <para>Initialization as fla's <c>_init_weights</c>: <c>in_proj</c>, <c>out_proj</c>, <c>lm_head</c>, the convolution
/// and the embedding normal(0, <c>initializer_range</c>) with zero biases; with <c>conv_init</c> the convolution's weight
/// U(-conv_init, conv_init); with <c>rescale_prenorm_residual</c> (default) <c>out_proj.weight</c>
/// U(-b, b), <c>b = 1 / sqrt(d_inner num_hidden_layers)</c> (PyTorch's Linear default, <c>kaiming_uniform_(a = sqrt 5)</c>,
/// divided by <c>sqrt(num_hidden_layers)</c>); <c>A_log = log U(A_init_range)</c>, <c>D = 1</c>,
/// <c>dt_bias = softplus^-1(dt)</c>, <c>dt = max(exp(U(log dt_min, log dt_max)), dt_init_floor)</c>, norm gains 1.</para>
/// <para>Groups: head h uses group <c>h / (NH / n_groups)</c>, as mamba_ssm's kernels (which fla's CUDA path calls) and
/// fla's decode path; fla's pure-PyTorch prefill (<c>torch_forward</c>) uses group <c>h mod n_groups</c>, which differs
/// when <c>n_groups &gt; 1</c> (docs/interop.md, "Mamba2").</para>
/// </summary>
public sealed class Mamba2ForCausalLM : FlaForCausalLM
{
    /// <summary>The decoder's name in fla's tree.</summary>
    private const string Backbone = "backbone";

    /// <summary>Creates the model, initialized as fla initializes it.</summary>
    /// <param name="config">The config (see <see cref="Mamba2Config"/>; fla's defaults make a 48-layer model of hidden
    /// size 2048: set the sizes you want).</param>
    /// <param name="chunkSize">The chunk size of the SSD kernel, or null for the config's <c>chunk_size</c> (the result
    /// does not depend on it; on the CPU 64 is usually faster than fla's 256, docs/benchmarks.md).</param>
    /// <exception cref="ArgumentException">A config value is out of range (the message names the field), or
    /// <paramref name="chunkSize"/> is below 1.</exception>
    /// <exception cref="NotSupportedException">The config's <c>hidden_act</c> is not <c>silu</c>.</exception>
    public Mamba2ForCausalLM(Mamba2Config config, int? chunkSize = null)
        : base(nameof(Mamba2ForCausalLM), config, BuildBackbone(config, chunkSize), Backbone)
    {
        InitializeMamba2(config);
    }

    /// <summary>The blocks' mixers, in order.</summary>
    public IEnumerable<Mamba2SequenceMixer> Mixers => Decoder.layers.Select(l => (Mamba2SequenceMixer)((Mamba2Block)l).mixer);

    private static FlaModel BuildBackbone(Mamba2Config config, int? chunkSize)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        if (chunkSize is int c) Check.AtLeast(c, 1, nameof(chunkSize));
        var layers = new List<SequenceModule>(config.NumHiddenLayers);
        for (int i = 0; i < config.NumHiddenLayers; i++)
        {
            var mixer = new Mamba2SequenceMixer(config.HiddenSize, config.StateSize, config.ConvKernel, config.Expand, config.HeadDim,
                config.NGroups, config.DtMin, config.DtMax, config.DtInitFloor, config.DtLimit, config.AInitRange, config.UseConvBias,
                config.UseBias, config.DHasHdim, config.RmsNorm, config.NormEps, chunkSize ?? config.ChunkSize, config.NormBeforeGate);
            layers.Add(new Mamba2Block(config.HiddenSize, mixer, config.NormEps, config.ResidualInFp32));
        }
        return new FlaModel(config.VocabSize, config.HiddenSize, layers, config.NormEps, paddingIdx: null, normName: "norm_f");
    }

    /// <summary>What fla's <c>_init_weights</c> does to a Mamba2 layer beyond the shared normal initialization.</summary>
    private void InitializeMamba2(Mamba2Config config)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        foreach (var mixer in Mixers)
        {
            if (config.ConvInit is double c) nn.init.uniform_(mixer.conv1d.weight, -c, c);
            if (config.RescalePrenormResidual)
            {
                double bound = 1 / Math.Sqrt((double)mixer.InnerDim * config.NumHiddenLayers);
                nn.init.uniform_(mixer.out_proj.weight!, -bound, bound);
            }
        }
    }
}
