namespace Discretax.Interop;

/// <summary>Which dtype the floating-point tensors of a module have after <see cref="Checkpoint.Load"/>.</summary>
public enum CheckpointDType
{
    /// <summary>The module keeps its dtypes: each checkpoint tensor is converted to its parameter's or buffer's dtype
    /// (a bfloat16 checkpoint into a float32 module gives float32 values, exactly the bfloat16 ones).</summary>
    Module = 0,

    /// <summary>The module takes the checkpoint's dtype: it is first converted with <c>module.to(dtype)</c> to the one
    /// floating dtype of the checkpoint's floating tensors it loads (several such dtypes are an error), so the values
    /// are copied unconverted. Integer and boolean buffers keep their dtypes.</summary>
    Checkpoint = 1,
}
