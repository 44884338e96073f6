using System.Text.Json;
using Discretax.Models;
using Discretax.SequenceMixers;
using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Interop;

/// <summary>
/// NX-AI xLSTM checkpoints in and out: the PyTorch <c>mLSTMLayer</c> of the <c>xlstm</c> package
/// (<c>xlstm/blocks/mlstm/layer.py</c>) as a <see cref="MLSTMSequenceMixer"/>, and the xLSTM-7B architecture
/// (<c>xlstm/xlstm_large/model.py</c>, <c>xLSTMLarge</c>; transformers' <c>xLSTMForCausalLM</c>) as a
/// <see cref="CausalLM"/> over <see cref="XLSTMLarge"/>, with the references' names and storage conventions.
/// Every load is strict by default (<see cref="Checkpoint.Load"/>: one <see cref="ArgumentException"/> listing every
/// missing, unexpected or mis-shaped tensor, before anything changes).
/// </summary>
/// <remarks>
/// <para>mLSTMLayer names (module name, checkpoint name): <c>proj_up.*</c>, <c>q_proj.*</c>, <c>k_proj.*</c>,
/// <c>v_proj.*</c>, <c>learnable_skip</c>, <c>proj_down.*</c> as they are; <c>conv1d.weight</c>/<c>conv1d.bias</c> =
/// <c>conv1d.conv.weight</c>/<c>conv1d.conv.bias</c>; <c>igate.*</c>, <c>fgate.*</c> = <c>mlstm_cell.igate.*</c>,
/// <c>mlstm_cell.fgate.*</c>; <c>outnorm.weight</c> = <c>mlstm_cell.outnorm.weight</c> + 1 (the reference's
/// <c>LayerNorm</c> has <c>residual_weight = True</c>: it stores <c>weight - 1</c> and multiplies by <c>1 + weight</c>).
/// The non-persistent buffer <c>mlstm_cell.causal_mask</c> is not in a state dict.</para>
/// <para>xLSTM-7B names: inside the block stack the reference's own (<c>blocks.{i}.norm_mlstm.weight</c>,
/// <c>blocks.{i}.mlstm_layer.{q,k,v,ogate_preact,igate_preact,fgate_preact,multihead_norm,out_proj}.*</c>,
/// <c>blocks.{i}.norm_ffn.weight</c>, <c>blocks.{i}.ffn.{proj_up_gate,proj_up,proj_down}.weight</c>, fused:
/// <c>qkv_opreact</c>, <c>ifgate_preact</c>, <c>proj_up_gate_z</c>; <c>out_norm.weight</c>); the <see cref="CausalLM"/>
/// prefixes map as <see cref="LargeName"/> says.</para>
/// </remarks>
public static class XLSTMCheckpoint
{
    /// <summary>
    /// A <see cref="MLSTMSequenceMixer"/> configured as NX-AI xlstm's PyTorch <c>mLSTMLayer</c> (<c>mLSTMLayerConfig</c>'s
    /// names and defaults): the multi-head norm's eps 1e-5 (<c>MultiHeadLayerNorm</c>'s default), the cell's fresh start
    /// <see cref="MLSTMStabilizerStart.NegativeInfinity"/> (its forward is <c>parallel_stabilized_simple</c>), gates from
    /// <c>[q, k, v]</c>, <c>Dqk = Dv = I</c>, no gate soft cap, layer norm; the inner size
    /// <c>I = 64 ceil(projFactor E / 64)</c> (<c>round_proj_up_dim_up = True</c>, <c>round_proj_up_to_multiple_of = 64</c>).
    /// </summary>
    /// <param name="embeddingDim">E (<c>embedding_dim</c>).</param>
    /// <param name="numHeads">NH (<c>num_heads</c>, default 4).</param>
    /// <param name="projFactor"><c>proj_factor</c> (default 2).</param>
    /// <param name="conv1dKernelSize"><c>conv1d_kernel_size</c> (default 4).</param>
    /// <param name="qkvProjBlocksize"><c>qkv_proj_blocksize</c> (default 4).</param>
    /// <param name="bias"><c>bias</c> (default false).</param>
    /// <param name="dropout"><c>dropout</c> (default 0).</param>
    /// <param name="numBlocks"><c>_num_blocks</c> (the Wang init, default 1).</param>
    /// <param name="chunkSize">The kernel's chunk length (no counterpart: the reference computes the quadratic form).</param>
    public static MLSTMSequenceMixer CreateTorchMLSTMLayer(long embeddingDim, int numHeads = 4, double projFactor = 2.0,
        int conv1dKernelSize = 4, int qkvProjBlocksize = 4, bool bias = false, double dropout = 0.0, int numBlocks = 1,
        int chunkSize = 64) =>
        new(embeddingDim, numHeads, projFactor, conv1dKernelSize, qkvProjBlocksize, bias, dropout, chunkSize: chunkSize,
            numBlocks: numBlocks, normEps: TorchLayerNormEps, stabilizerStart: MLSTMStabilizerStart.NegativeInfinity);

    /// <summary>
    /// <see cref="CreateTorchMLSTMLayer(long, int, double, int, int, bool, double, int, int)"/> from the fields of an
    /// <c>mLSTMLayerConfig</c> (a JSON object such as <c>dataclasses.asdict(config)</c>): <c>embedding_dim</c>
    /// (required), <c>num_heads</c>, <c>proj_factor</c>, <c>conv1d_kernel_size</c>, <c>qkv_proj_blocksize</c>,
    /// <c>bias</c>, <c>dropout</c>, <c>_num_blocks</c>; other fields are ignored, except the rounding of the inner size,
    /// which must be the default (<c>round_proj_up_dim_up = true</c>, <c>round_proj_up_to_multiple_of = 64</c>).
    /// </summary>
    /// <param name="config">The JSON object.</param>
    /// <param name="chunkSize">The kernel's chunk length.</param>
    /// <exception cref="ArgumentException">A field is missing or of the wrong type, or the rounding differs.</exception>
    public static MLSTMSequenceMixer CreateTorchMLSTMLayer(JsonElement config, int chunkSize = 64)
    {
        if (config.ValueKind != JsonValueKind.Object)
            throw new ArgumentException($"Expected a JSON object as config; got {config.ValueKind}.", nameof(config));
        double Num(string name, double fallback)
        {
            if (!config.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
            if (v.ValueKind != JsonValueKind.Number)
                throw new ArgumentException($"Expected a number for {name} in config; got {v.GetRawText()}.", nameof(config));
            return v.GetDouble();
        }
        bool Flag(string name, bool fallback)
        {
            if (!config.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
            return v.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw new ArgumentException($"Expected true or false for {name} in config; got {v.GetRawText()}.", nameof(config)),
            };
        }
        if (!config.TryGetProperty("embedding_dim", out _))
            throw new ArgumentException("The config has no embedding_dim; it is required.", nameof(config));
        if (!Flag("round_proj_up_dim_up", true) || Num("round_proj_up_to_multiple_of", 64) != 64)
            throw new ArgumentException("Expected the default rounding of the inner size (round_proj_up_dim_up = true, round_proj_up_to_multiple_of = 64); the config has another.", nameof(config));
        return CreateTorchMLSTMLayer((long)Num("embedding_dim", 0), (int)Num("num_heads", 4), Num("proj_factor", 2.0),
            (int)Num("conv1d_kernel_size", 4), (int)Num("qkv_proj_blocksize", 4), Flag("bias", false), Num("dropout", 0.0),
            (int)Num("_num_blocks", 1), chunkSize);
    }

    /// <summary>The eps of NX-AI xlstm's PyTorch <c>LayerNorm</c> / <c>MultiHeadLayerNorm</c> (1e-5).</summary>
    public const double TorchLayerNormEps = 1e-5;

    /// <summary>
    /// The name NX-AI xlstm's PyTorch <c>mLSTMLayer</c> gives a tensor of a <see cref="MLSTMSequenceMixer"/>
    /// (see the remarks of the class), or null for a tensor it does not have (<c>x_mlstm_conv_scaling</c>).
    /// </summary>
    /// <param name="name">The module's <c>state_dict</c> name.</param>
    public static string? TorchMLSTMLayerName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.StartsWith("x_mlstm_conv_scaling", StringComparison.Ordinal)) return null;
        if (name.StartsWith("conv1d.", StringComparison.Ordinal)) return "conv1d.conv." + name["conv1d.".Length..];
        if (name.StartsWith("igate.", StringComparison.Ordinal) || name.StartsWith("fgate.", StringComparison.Ordinal)
            || name.StartsWith("outnorm.", StringComparison.Ordinal))
            return "mlstm_cell." + name;
        return name;
    }

    /// <summary>
    /// Loads an NX-AI xlstm PyTorch <c>mLSTMLayer</c> state dict (a <c>torch.save</c> file or safetensors read with
    /// <see cref="Checkpoint.Read"/>) into <paramref name="layer"/>: the names of <see cref="TorchMLSTMLayerName"/>,
    /// <c>mlstm_cell.outnorm.weight + 1</c> into <c>outnorm.weight</c>. The layer must be configured as the reference
    /// (<see cref="CreateTorchMLSTMLayer(long, int, double, int, int, bool, double, int, int)"/>), else the outputs
    /// would differ: that is checked first.
    /// </summary>
    /// <param name="layer">The layer to fill.</param>
    /// <param name="stateDict">The tensors by name; not changed.</param>
    /// <param name="prefix">The layer's prefix in the checkpoint (e.g. <c>"xlstm_block_stack.blocks.0.xlstm."</c>); only
    /// names that begin with it are considered (default: none, the whole dictionary is the layer's).</param>
    /// <param name="strict">Whether missing and unexpected tensors fail the load.</param>
    /// <param name="dtype">Whether the layer keeps its dtypes or takes the checkpoint's.</param>
    /// <returns>What was loaded (module names) and what was left.</returns>
    /// <exception cref="ArgumentException">The layer is not configured as the reference (parameter <c>layer</c>), or the
    /// tensors do not fit it (parameter <c>tensors</c>, every problem listed).</exception>
    public static CheckpointLoadResult LoadTorchMLSTMLayer(MLSTMSequenceMixer layer, IReadOnlyDictionary<string, Tensor> stateDict,
        string prefix = "", bool strict = true, CheckpointDType dtype = CheckpointDType.Module)
    {
        ArgumentNullException.ThrowIfNull(layer);
        ArgumentNullException.ThrowIfNull(stateDict);
        ArgumentNullException.ThrowIfNull(prefix);
        CheckTorchLayer(layer);
        var view = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        Tensor? gain = null;
        try
        {
            foreach (var (name, t) in stateDict)
            {
                if (!name.StartsWith(prefix, StringComparison.Ordinal)) continue;
                string local = name[prefix.Length..];
                if (local == "mlstm_cell.outnorm.weight" && t is not null && Check.IsRealFloating(t.dtype))
                {
                    // residual_weight: the file holds weight - 1 (the sum in float64, stored back in the file's dtype).
                    using (var wide = t.to(ScalarType.Float64))
                    using (var sum = wide + 1.0)
                        gain = sum.to(t.dtype);
                    view[local] = gain;
                }
                else view[local] = t!;
            }
            var result = Checkpoint.Load(layer, view, TorchMLSTMLayerName, strict, dtype);
            return result with { Unexpected = result.Unexpected.Select(n => prefix + n).ToList() };
        }
        finally
        {
            gain?.Dispose();
        }
    }

    /// <summary>
    /// The tensors of <paramref name="layer"/> under NX-AI xlstm's PyTorch names (<see cref="TorchMLSTMLayerName"/>, with
    /// <paramref name="prefix"/>), <c>outnorm.weight - 1</c> as <c>mlstm_cell.outnorm.weight</c>: new CPU tensors (the
    /// caller disposes them), in the layer's dtypes. <c>torch.load_state_dict</c> of the reference layer takes them
    /// (after <c>safetensors.torch.load_file</c> of <see cref="SaveTorchMLSTMLayer"/>'s file).
    /// </summary>
    /// <param name="layer">The layer (configured as the reference: checked).</param>
    /// <param name="prefix">A prefix for every name (default none).</param>
    /// <remarks>The stored gain is <c>fl(w - 1)</c>; re-importing gives <c>fl(1 + fl(w - 1)) = w</c> exactly for every
    /// gain <c>w &gt;= 0.5</c> (Sterbenz), and within one rounding below.</remarks>
    public static Dictionary<string, Tensor> TorchMLSTMLayerStateDict(MLSTMSequenceMixer layer, string prefix = "")
    {
        ArgumentNullException.ThrowIfNull(layer);
        ArgumentNullException.ThrowIfNull(prefix);
        CheckTorchLayer(layer);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        using var noGrad = no_grad();
        foreach (var (name, t) in layer.state_dict())
        {
            string? target = TorchMLSTMLayerName(name);
            if (target is null) continue;
            var value = target == "mlstm_cell.outnorm.weight"
                ? (t.detach().to(ScalarType.Float64) - 1.0).to(t.dtype).cpu()
                : t.detach().cpu().clone();
            result[prefix + target] = value.contiguous();
        }
        return result;
    }

    /// <summary>Saves <paramref name="layer"/> as a safetensors file with NX-AI xlstm's PyTorch names
    /// (<see cref="TorchMLSTMLayerStateDict"/>) and <c>{"format": "pt"}</c> metadata.</summary>
    /// <param name="layer">The layer (configured as the reference: checked).</param>
    /// <param name="path">The file to write (replaced if it exists).</param>
    /// <param name="prefix">A prefix for every name (default none).</param>
    public static void SaveTorchMLSTMLayer(MLSTMSequenceMixer layer, string path, string prefix = "")
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var tensors = TorchMLSTMLayerStateDict(layer, prefix);
        try
        {
            SafeTensors.Write(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    /// <summary>Throws (<c>layer</c>) unless the layer computes as NX-AI xlstm's PyTorch <c>mLSTMLayer</c>.</summary>
    private static void CheckTorchLayer(MLSTMSequenceMixer layer)
    {
        var wrong = new List<string>();
        if (layer.NormEps != TorchLayerNormEps) wrong.Add($"normEps {layer.NormEps} (expected {TorchLayerNormEps})");
        if (layer.StabilizerStart != MLSTMStabilizerStart.NegativeInfinity) wrong.Add($"stabilizerStart {layer.StabilizerStart} (expected NegativeInfinity)");
        if (layer.GateInput != MLSTMGateInput.Qkv) wrong.Add($"gateInput {layer.GateInput} (expected Qkv)");
        if (layer.NormType != MLSTMNormType.LayerNorm) wrong.Add($"normType {layer.NormType} (expected LayerNorm)");
        if (layer.GateSoftCap is not null) wrong.Add($"gateSoftCap {layer.GateSoftCap} (expected none)");
        if (layer.QKDim != layer.InnerDim || layer.VDim != layer.InnerDim)
            wrong.Add($"Dqk = {layer.QKDim}, Dv = {layer.VDim} (expected both the inner size {layer.InnerDim}: qkDimFactor = vDimFactor = 1)");
        if (wrong.Count > 0)
            throw new ArgumentException("The layer is not configured as NX-AI xlstm's PyTorch mLSTMLayer (build it with XLSTMCheckpoint.CreateTorchMLSTMLayer): "
                + string.Join("; ", wrong) + ".", nameof(layer));
    }

    /// <summary>
    /// The checkpoint name of a tensor of the xLSTM-7B <see cref="CausalLM"/> (<see cref="XLSTMLarge.CreateCausalLM"/>):
    /// <c>embeddings.weight</c> is <c>embedding.weight</c> (<see cref="XLSTMLargeLayout.XLSTM"/>) or
    /// <c>backbone.embeddings.weight</c> (the two transformers layouts); <c>model.X</c> is <c>backbone.X</c>, with
    /// <c>mlstm_layer.q</c>, <c>.k</c>, <c>.v</c> spelled <c>query</c>, <c>key</c>, <c>value</c> in
    /// <see cref="XLSTMLargeLayout.TransformersQueryKeyValue"/>; <c>lm_head.weight</c> is itself.
    /// </summary>
    /// <param name="name">The <see cref="CausalLM"/>'s <c>state_dict</c> name.</param>
    /// <param name="layout">Whose names.</param>
    public static string LargeName(string name, XLSTMLargeLayout layout = XLSTMLargeLayout.XLSTM)
    {
        ArgumentNullException.ThrowIfNull(name);
        Check.Defined(layout);
        if (name == "embeddings.weight")
            return layout == XLSTMLargeLayout.XLSTM ? "embedding.weight" : "backbone.embeddings.weight";
        if (!name.StartsWith("model.", StringComparison.Ordinal)) return name;
        string inner = "backbone." + name["model.".Length..];
        if (layout == XLSTMLargeLayout.TransformersQueryKeyValue)
            foreach (var (from, to) in QueryKeyValue)
                inner = inner.Replace(from, to, StringComparison.Ordinal);
        return inner;
    }

    private static readonly (string From, string To)[] QueryKeyValue =
        [(".mlstm_layer.q.", ".mlstm_layer.query."), (".mlstm_layer.k.", ".mlstm_layer.key."), (".mlstm_layer.v.", ".mlstm_layer.value.")];

    /// <summary>Whose names a checkpoint of the xLSTM-7B architecture has: a transformers layout when it holds
    /// <c>backbone.embeddings.weight</c> (<see cref="XLSTMLargeLayout.TransformersQueryKeyValue"/> when a layer's
    /// projection is named <c>query</c>), else <see cref="XLSTMLargeLayout.XLSTM"/>.</summary>
    /// <param name="names">The checkpoint's tensor names.</param>
    public static XLSTMLargeLayout DetectLayout(IEnumerable<string> names)
    {
        ArgumentNullException.ThrowIfNull(names);
        var list = names as ICollection<string> ?? names.ToList();
        if (!list.Contains("backbone.embeddings.weight")) return XLSTMLargeLayout.XLSTM;
        return list.Any(n => n.Contains(".mlstm_layer.query.", StringComparison.Ordinal))
            ? XLSTMLargeLayout.TransformersQueryKeyValue
            : XLSTMLargeLayout.Transformers;
    }

    /// <summary>
    /// Loads a Hugging Face-style directory of the xLSTM-7B architecture (<c>config.json</c> read by
    /// <see cref="XLSTMLargeConfig.FromJson"/>; <c>model.safetensors</c>, a sharded index, or <c>pytorch_model.bin</c>,
    /// as <see cref="HuggingFaceCheckpoint.Load"/> finds them; names of either <see cref="XLSTMLargeLayout"/>, detected)
    /// into a new <see cref="CausalLM"/> (<see cref="XLSTMLarge.CreateCausalLM"/>), in eval mode.
    /// </summary>
    /// <param name="directory">The directory.</param>
    /// <param name="dtype"><see cref="CheckpointDType.Module"/> (default): a float32 model, bfloat16/float16 weights
    /// converted exactly; <see cref="CheckpointDType.Checkpoint"/>: the model takes the checkpoint's dtype (kept bfloat16).</param>
    /// <param name="strict">Whether missing and unexpected tensors fail the load (default true).</param>
    /// <exception cref="FileNotFoundException">There is no config.json or no weight file.</exception>
    /// <exception cref="ArgumentException">The config is invalid, or the weights do not fit it (every problem listed).</exception>
    public static CausalLM LoadLarge(string directory, CheckpointDType dtype = CheckpointDType.Module, bool strict = true)
    {
        using var hf = HuggingFaceCheckpoint.Load(directory);
        if (hf.Config is not JsonElement config)
            throw new FileNotFoundException($"The model directory '{directory}' has no config.json.", Path.Combine(directory, "config.json"));
        var lm = XLSTMLarge.CreateCausalLM(XLSTMLargeConfig.FromJson(config));
        try
        {
            LoadLarge(lm, hf.Tensors, null, strict, dtype);
        }
        catch
        {
            lm.Dispose();
            throw;
        }
        lm.eval();
        return lm;
    }

    /// <summary>
    /// Loads xLSTM-7B tensors by name into <paramref name="lm"/> (built with <see cref="XLSTMLarge.CreateCausalLM"/>),
    /// through <see cref="LargeName"/>. With tied weights, a checkpoint's <c>lm_head.weight</c> is left out.
    /// </summary>
    /// <param name="lm">The model.</param>
    /// <param name="tensors">The tensors by name; not changed.</param>
    /// <param name="layout">Whose names, or null to detect them (<see cref="DetectLayout"/>).</param>
    /// <param name="strict">Whether missing and unexpected tensors fail the load.</param>
    /// <param name="dtype">Whether the model keeps its dtypes or takes the checkpoint's.</param>
    /// <exception cref="ArgumentException"><paramref name="lm"/> has no <see cref="XLSTMLarge"/> inside (parameter
    /// <c>lm</c>), or the tensors do not fit it (parameter <c>tensors</c>).</exception>
    public static CheckpointLoadResult LoadLarge(CausalLM lm, IReadOnlyDictionary<string, Tensor> tensors,
        XLSTMLargeLayout? layout = null, bool strict = true, CheckpointDType dtype = CheckpointDType.Module)
    {
        ArgumentNullException.ThrowIfNull(lm);
        ArgumentNullException.ThrowIfNull(tensors);
        if (lm.model is not XLSTMLarge)
            throw new ArgumentException($"Expected a CausalLM over an XLSTMLarge (XLSTMLarge.CreateCausalLM); its model is a {lm.model.GetType().Name}.", nameof(lm));
        var which = layout ?? DetectLayout(tensors.Keys);
        IReadOnlyDictionary<string, Tensor> source = tensors;
        if (lm.TiedWeights && tensors.ContainsKey("lm_head.weight"))
            source = tensors.Where(kv => kv.Key != "lm_head.weight").ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        return Checkpoint.Load(lm, source, n => LargeName(n, which), strict, dtype);
    }

    /// <summary>
    /// Saves an xLSTM-7B <see cref="CausalLM"/> as a Hugging Face-style directory: <c>config.json</c>
    /// (<see cref="XLSTMLargeConfig.ToJson"/>) and <c>model.safetensors</c> with the names of <paramref name="layout"/>,
    /// in the model's dtypes (convert the model first for another: <c>lm.to(ScalarType.BFloat16)</c>).
    /// <see cref="LoadLarge(string, CheckpointDType, bool)"/> reads it back, and so do the references
    /// (<c>xLSTMLarge.load_state_dict(safetensors.torch.load_file(...))</c>, transformers' <c>from_pretrained</c> with
    /// <see cref="XLSTMLargeLayout.Transformers"/>).
    /// </summary>
    /// <param name="lm">The model (built with <see cref="XLSTMLarge.CreateCausalLM"/>).</param>
    /// <param name="directory">The directory (created if needed; both files replaced).</param>
    /// <param name="layout">Whose names (default the xlstm package's).</param>
    public static void SaveLarge(CausalLM lm, string directory, XLSTMLargeLayout layout = XLSTMLargeLayout.XLSTM)
    {
        ArgumentNullException.ThrowIfNull(lm);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Check.Defined(layout);
        if (lm.model is not XLSTMLarge stack)
            throw new ArgumentException($"Expected a CausalLM over an XLSTMLarge (XLSTMLarge.CreateCausalLM); its model is a {lm.model.GetType().Name}.", nameof(lm));
        Directory.CreateDirectory(directory);
        var config = stack.Config with { TieWordEmbeddings = lm.TiedWeights, OutputLogitSoftCap = lm.LogitSoftCap };
        File.WriteAllText(Path.Combine(directory, "config.json"),
            config.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        Checkpoint.Save(lm, Path.Combine(directory, "model.safetensors"), n => LargeName(n, layout));
    }
}

/// <summary>Whose tensor names a checkpoint of the xLSTM-7B architecture has (<see cref="XLSTMCheckpoint.LargeName"/>).</summary>
public enum XLSTMLargeLayout
{
    /// <summary>NX-AI xlstm's <c>xLSTMLarge.state_dict()</c>: <c>embedding.weight</c>, <c>backbone.blocks.{i}...</c>,
    /// <c>backbone.out_norm.weight</c>, <c>lm_head.weight</c>.</summary>
    XLSTM,

    /// <summary>transformers' <c>xLSTMForCausalLM</c> over the xlstm package's blocks (the Hugging Face hub's
    /// <c>NX-AI/xLSTM-7b</c>): <c>backbone.embeddings.weight</c>, <c>backbone.blocks.{i}...</c> (<c>mlstm_layer.q</c>, ...),
    /// <c>backbone.out_norm.weight</c>, <c>lm_head.weight</c>.</summary>
    Transformers,

    /// <summary>transformers' own <c>xLSTMForCausalLM</c> modules (when the xlstm package is not installed), whose
    /// layers name the projections <c>query</c>, <c>key</c>, <c>value</c>; otherwise as <see cref="Transformers"/>.</summary>
    TransformersQueryKeyValue,
}
