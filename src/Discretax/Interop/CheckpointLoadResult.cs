namespace Discretax.Interop;

/// <summary>What <see cref="Checkpoint.Load"/> did: the module's tensors it loaded, those it left as they were, and
/// the checkpoint's tensors it did not use. Names are the module's (<c>state_dict()</c>) names, except
/// <see cref="Unexpected"/>, which are the checkpoint's.</summary>
/// <param name="Loaded">The module tensors that were copied from the checkpoint, in the module's order.</param>
/// <param name="Missing">The module tensors whose (mapped) name the checkpoint lacks; left as they were. Empty
/// after a strict load.</param>
/// <param name="Skipped">The module tensors the name map mapped to null: not looked for, left as they were.</param>
/// <param name="Unexpected">The checkpoint tensors no module tensor maps to, in the checkpoint's order. Empty after a
/// strict load.</param>
public sealed record CheckpointLoadResult(
    IReadOnlyList<string> Loaded,
    IReadOnlyList<string> Missing,
    IReadOnlyList<string> Skipped,
    IReadOnlyList<string> Unexpected);
