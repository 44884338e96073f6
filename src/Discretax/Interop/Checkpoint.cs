using System.Text;
using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Interop;

/// <summary>
/// Checkpoints in and out of modules: read any supported file or Hugging Face directory, load tensors by name into a
/// module's parameters and buffers (strictly by default), and save a module as safetensors that PyTorch reads.
/// </summary>
/// <remarks>
/// <para>Names. A module's tensors are named as its <c>state_dict()</c> names them (parameters and persistent
/// buffers, dotted paths such as <c>blocks.0.norm.weight</c>). A name map <c>f</c> translates a module name to the
/// checkpoint's name (<c>n =&gt; "model." + n</c>, or a dictionary lookup); returning null leaves that module tensor
/// out (not loaded, not saved, not counted missing). Loading and saving use the same direction, module to file, so
/// one map serves both. Tensors that need more than a new name (a transpose, a split of a fused weight) are changed
/// by the caller in a dictionary of their own, which <see cref="Load"/> takes as well as a <see cref="StateDict"/>.</para>
/// <para>Strictness. <see cref="Load"/> checks everything before it changes anything. Strict (the default), any
/// missing, unexpected, mis-shaped or unconvertible tensor fails the load with one
/// <see cref="ArgumentException"/> (parameter <c>tensors</c>) that lists every problem, each with the module name,
/// the checkpoint name, and the expected and found shape or dtype. Not strict, missing and unexpected tensors are
/// allowed and listed in the <see cref="CheckpointLoadResult"/>; shape and dtype problems still fail (as in
/// PyTorch's <c>load_state_dict(strict=False)</c>). A failed load leaves the module untouched.</para>
/// <para>Dtypes. A floating tensor loads into a floating parameter of any floating dtype, an integer one into any
/// integer dtype, a complex one into any complex dtype, a boolean one only into a boolean; see
/// <see cref="CheckpointDType"/> for whose dtype wins.</para>
/// </remarks>
public static class Checkpoint
{
    /// <summary>
    /// Reads a checkpoint: a safetensors file, a <c>torch.save</c> file (<c>.pt</c>, <c>.pth</c>, <c>.bin</c>), told
    /// apart by their first bytes, not their names, or a Hugging Face model directory
    /// (<see cref="HuggingFaceCheckpoint"/>; use that class for its <c>config.json</c>).
    /// </summary>
    /// <param name="path">The file or directory.</param>
    /// <param name="include">Which tensor names to read (null: all).</param>
    /// <returns>The tensors; the caller disposes them.</returns>
    /// <exception cref="FileNotFoundException">There is no such file or directory.</exception>
    /// <exception cref="CheckpointFormatException">The file is malformed or of no supported format.</exception>
    public static StateDict Read(string path, Func<string, bool>? include = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (Directory.Exists(path)) return HuggingFaceCheckpoint.Load(path, include).Tensors;
        if (!File.Exists(path)) throw new FileNotFoundException($"The checkpoint '{path}' does not exist.", path);
        Span<byte> head = stackalloc byte[2];
        using (var f = File.OpenRead(path)) head = head[..f.ReadAtLeast(head, 2, throwOnEndOfStream: false)];
        bool torchSave = head.Length == 2 && (head[0] == 'P' && head[1] == 'K' || head[0] == 0x80 && head[1] <= 5);
        return torchSave ? PyTorchCheckpoint.Read(path, include) : SafeTensors.Read(path, include);
    }

    /// <summary>
    /// Copies checkpoint tensors into the parameters and persistent buffers of <paramref name="module"/> by name,
    /// under <c>no_grad</c>, on the module's devices. Strict by default: see the remarks of the class.
    /// </summary>
    /// <param name="module">The module to fill.</param>
    /// <param name="tensors">The checkpoint's tensors by name (a <see cref="StateDict"/> or any dictionary); they are
    /// not changed and may be disposed after the call.</param>
    /// <param name="nameMap">Module name to checkpoint name (null: the same names; a null result leaves that module
    /// tensor out).</param>
    /// <param name="strict">Whether missing and unexpected tensors fail the load (true) or are listed in the result.</param>
    /// <param name="dtype">Whether the module keeps its dtypes (default) or takes the checkpoint's.</param>
    /// <returns>What was loaded, missing, skipped and unused.</returns>
    /// <exception cref="ArgumentException">The checkpoint does not fit the module; the message lists every problem.</exception>
    public static CheckpointLoadResult Load(nn.Module module, IReadOnlyDictionary<string, Tensor> tensors,
        Func<string, string?>? nameMap = null, bool strict = true, CheckpointDType dtype = CheckpointDType.Module)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(tensors);
        Check.Defined(dtype);

        var loaded = new List<(string Module, string Checkpoint)>();
        var missing = new List<string>();
        var skipped = new List<string>();
        var problems = new List<string>();
        int missingCount = 0, unexpectedCount = 0, shapeCount = 0, dtypeCount = 0;
        var used = new HashSet<string>(StringComparer.Ordinal);
        var target = module.state_dict();
        foreach (var (name, dst) in target)
        {
            string? source = nameMap is null ? name : nameMap(name);
            if (source is null) { skipped.Add(name); continue; }
            string shown = source == name ? $"'{name}'" : $"'{name}' (checkpoint name '{source}')";
            if (!tensors.TryGetValue(source, out var src) || src is null)
            {
                missing.Add(name);
                missingCount++;
                problems.Add($"  missing:    {shown} {Check.Shape(dst)} {dst.dtype} is not in the checkpoint");
                continue;
            }
            used.Add(source);
            if (!src.shape.SequenceEqual(dst.shape))
            {
                shapeCount++;
                problems.Add($"  shape:      {shown} expects {Check.Shape(dst)}, the checkpoint has {Check.Shape(src)}");
                continue;
            }
            if (!DTypes.Convertible(src.dtype, dst.dtype))
            {
                dtypeCount++;
                problems.Add($"  dtype:      {shown} is {dst.dtype}, the checkpoint's tensor is {src.dtype}, which does not convert to it");
                continue;
            }
            loaded.Add((name, source));
        }
        var unexpected = tensors.Keys.Where(k => !used.Contains(k)).ToList();
        foreach (var k in unexpected)
        {
            unexpectedCount++;
            var t = tensors[k];
            problems.Add($"  unexpected: '{k}' {(t is null ? "null" : $"{Check.Shape(t)} {t.dtype}")} is not a tensor of the module");
        }

        ScalarType? moduleDType = null;
        if (dtype == CheckpointDType.Checkpoint)
        {
            var floating = loaded.Where(l => Check.IsRealFloating(target[l.Module].dtype))
                                 .GroupBy(l => tensors[l.Checkpoint].dtype).ToList();
            if (floating.Count > 1)
            {
                dtypeCount++;
                problems.Add("  dtype:      CheckpointDType.Checkpoint needs one floating dtype, but the checkpoint has "
                             + string.Join("; ", floating.Select(g => $"{g.Key} ('{string.Join("', '", g.Select(l => l.Checkpoint).Take(3))}'{(g.Count() > 3 ? ", ..." : "")})")));
            }
            else if (floating.Count == 1) moduleDType = floating[0].Key;
        }

        bool fail = shapeCount + dtypeCount > 0 || strict && missingCount + unexpectedCount > 0;
        if (fail)
        {
            var shown = strict ? problems : problems.Where(p => !p.StartsWith("  missing", StringComparison.Ordinal) && !p.StartsWith("  unexpected", StringComparison.Ordinal));
            var counts = new List<string>();
            if (strict && missingCount > 0) counts.Add($"{missingCount} missing");
            if (strict && unexpectedCount > 0) counts.Add($"{unexpectedCount} unexpected");
            if (shapeCount > 0) counts.Add($"{shapeCount} of another shape");
            if (dtypeCount > 0) counts.Add($"{dtypeCount} of an unconvertible dtype");
            var message = new StringBuilder($"The checkpoint does not fit the module {module.GetType().Name}: {string.Join(", ", counts)} (module names first, then the checkpoint's):\n");
            message.Append(string.Join("\n", shown)).Append('\n');
            throw new ArgumentException(message.ToString(), nameof(tensors));
        }

        if (moduleDType is { } md && target.Values.Any(t => Check.IsRealFloating(t.dtype) && t.dtype != md))
        {
            module.to(md);
            target = module.state_dict();   // the conversion replaced the parameter and buffer objects
        }
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            foreach (var (name, source) in loaded) target[name].copy_(tensors[source]);
        }
        return new CheckpointLoadResult(loaded.Select(l => l.Module).ToList(), missing, skipped, strict ? [] : unexpected);
    }

    /// <summary>
    /// Saves the parameters and persistent buffers of <paramref name="module"/> as a safetensors file under the
    /// names <paramref name="nameMap"/> gives them, with <c>{"format": "pt"}</c> in its metadata as Hugging Face
    /// writes it (PyTorch's <c>safetensors.torch.load_file</c> and the Hugging Face loaders read it).
    /// </summary>
    /// <param name="module">The module.</param>
    /// <param name="path">The file to write (replaced if it exists, only once complete).</param>
    /// <param name="nameMap">Module name to file name (null: the same names; a null result leaves that tensor out).</param>
    /// <param name="metadata">More string metadata (null: none); a <c>format</c> entry replaces <c>pt</c>.</param>
    /// <exception cref="ArgumentException">Two module tensors map to one name (<paramref name="nameMap"/>), or a
    /// tensor is complex, which safetensors cannot hold.</exception>
    public static void Save(nn.Module module, string path, Func<string, string?>? nameMap = null,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentException.ThrowIfNullOrEmpty(path);
        var named = new List<KeyValuePair<string, Tensor>>();
        var from = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, t) in module.state_dict())
        {
            string? target = nameMap is null ? name : nameMap(name);
            if (target is null) continue;
            if (!from.TryAdd(target, name))
                throw new ArgumentException($"The module tensors '{from[target]}' and '{name}' both map to '{target}'.", nameof(nameMap));
            named.Add(new(target, t));
        }
        var meta = new Dictionary<string, string>(StringComparer.Ordinal) { ["format"] = "pt" };
        if (metadata is not null)
            foreach (var (k, v) in metadata) meta[k] = v;
        SafeTensors.Write(path, named, meta);
    }
}
