using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.Distributed;

/// <summary>
/// Data-parallel training of one module over MPI (<see cref="Mpi"/>): every rank holds the whole module, trains on its
/// own shard of each batch (<see cref="ShardIndices"/>), and after <c>backward</c> the ranks average their gradients,
/// so every rank takes the same optimizer step and the parameters stay identical.
/// <list type="bullet">
/// <item>The constructor copies rank 0's parameters and buffers to every rank (<see cref="BroadcastState"/>).</item>
/// <item><see cref="ReduceGradients"/> replaces each gradient by the mean over the ranks,
/// <c>g &lt;- (1/W) sum_{r=0}^{W-1} g_r</c>. With each rank's loss the mean over its B/W examples, that is the gradient
/// of the mean loss over the whole batch of B, what one process training on the whole batch computes. The gradients
/// travel in flat buckets of at most <c>bucketBytes</c> (a parameter larger than that gets a bucket of its own): one
/// all-reduce per bucket instead of one per parameter. float64 gradients are summed in float64, the others (float32,
/// bfloat16, float16) in float32 buckets; complex gradients as their real and imaginary parts.</item>
/// <item><see cref="SynchronizeBuffers"/>, at the end of each epoch, averages the batch-norm running statistics
/// (buffers named <c>running_mean</c> and <c>running_var</c>) over the ranks and copies every other buffer from rank 0
/// (docs/distributed.md says why averaging, and why per epoch).</item>
/// <item>Only rank 0 (<see cref="IsRoot"/>) should log, plot and save: its module is the model.</item>
/// </list>
/// The module lives on the CPU (the MPI collectives read host memory). Every rank must construct its
/// <see cref="DataParallel"/> on a module of the same structure, and call <see cref="ReduceGradients"/> (or
/// <see cref="Step"/>) and <see cref="SynchronizeBuffers"/> the same number of times: the collectives pair up
/// in order.
/// </summary>
public sealed class DataParallel : IDisposable
{
    /// <summary>The default bucket size, 4 MiB (a million float32 gradients).</summary>
    public const long DefaultBucketBytes = 4L << 20;

    private readonly List<Bucket> buckets = [];
    private bool disposed;

    /// <summary>
    /// Wraps <paramref name="module"/>: checks that it is on the CPU, copies rank 0's parameters and buffers to every
    /// rank and lays out the gradient buckets. MPI must be initialized (<see cref="Mpi.Initialize"/>).
    /// </summary>
    /// <param name="module">The module to train, on the CPU, built the same way on every rank.</param>
    /// <param name="bucketBytes">The most bytes of gradients one all-reduce carries, at least 1.</param>
    /// <exception cref="ArgumentException">A parameter or buffer is not on the CPU, or a parameter that requires a
    /// gradient is not floating point.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="bucketBytes"/> is below 1.</exception>
    /// <exception cref="InvalidOperationException">MPI is not initialized.</exception>
    public DataParallel(nn.Module module, long bucketBytes = DefaultBucketBytes)
    {
        ArgumentNullException.ThrowIfNull(module);
        if (bucketBytes < 1)
            throw new ArgumentOutOfRangeException(nameof(bucketBytes), bucketBytes, $"Expected a bucket size of at least 1 byte; got {bucketBytes}.");
        foreach (var (name, p) in module.named_parameters())
        {
            if (p.device_type != DeviceType.CPU)
                throw new ArgumentException($"Expected a module on the CPU (the MPI collectives read host memory); parameter '{name}' is on {p.device}.", nameof(module));
            if (p.requires_grad && !(p.is_floating_point() || p.is_complex()))
                throw new ArgumentException($"Expected floating-point parameters; parameter '{name}' requires a gradient but is {p.dtype}.", nameof(module));
        }
        foreach (var (name, b) in module.named_buffers())
            if (b.device_type != DeviceType.CPU)
                throw new ArgumentException($"Expected a module on the CPU (the MPI collectives read host memory); buffer '{name}' is on {b.device}.", nameof(module));
        Rank = Mpi.Rank;
        WorldSize = Mpi.WorldSize;
        Module = module;
        BucketBytes = bucketBytes;
        BroadcastState();
        LayOutBuckets();
    }

    /// <summary>The wrapped module.</summary>
    public nn.Module Module { get; }

    /// <summary>This process's rank.</summary>
    public int Rank { get; }

    /// <summary>The number of processes, W.</summary>
    public int WorldSize { get; }

    /// <summary>Whether this is rank 0, the only rank that should log, plot and save.</summary>
    public bool IsRoot => Rank == 0;

    /// <summary>The most bytes of gradients one all-reduce carries.</summary>
    public long BucketBytes { get; }

    /// <summary>The number of gradient buckets (all-reduces per <see cref="ReduceGradients"/>).</summary>
    public int BucketCount => buckets.Count;

    /// <summary>
    /// The indices of this rank's shard of a data set of <paramref name="count"/> examples in epoch
    /// <paramref name="epoch"/>: <see cref="DataShard.Indices"/> with this rank and world size.
    /// </summary>
    /// <param name="count">The examples in the data set, at least <see cref="WorldSize"/>.</param>
    /// <param name="epoch">The epoch; each gives another permutation.</param>
    /// <param name="seed">The seed of the permutations, the same on every rank.</param>
    /// <param name="shuffle">Permute (default), or take every W-th example in order.</param>
    public long[] ShardIndices(long count, int epoch, long seed = 0, bool shuffle = true) =>
        DataShard.Indices(count, epoch, seed, Rank, WorldSize, shuffle);

    /// <summary>Copies rank 0's parameters and buffers into every rank's module (called by the constructor; call it
    /// again after loading a checkpoint on rank 0 only).</summary>
    public void BroadcastState()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var p in Module.parameters()) BroadcastInPlace(p);
        foreach (var b in Module.buffers()) BroadcastInPlace(b);
    }

    /// <summary>
    /// Averages the gradients over the ranks, bucket by bucket: <c>g &lt;- (1/W) sum_r g_r</c>. Call it after
    /// <c>backward</c> and before gradient clipping and <c>optimizer.step()</c> (so every rank clips the same
    /// gradients). A parameter without a gradient on this rank contributes zeros and receives the mean.
    /// </summary>
    public void ReduceGradients()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (WorldSize == 1) return;
        using var noGrad = no_grad();
        foreach (var bucket in buckets)
        {
            using var scope = NewDisposeScope();
            for (int i = 0; i < bucket.Parameters.Length; i++)
            {
                var slot = bucket.Flat.narrow(0, bucket.Offsets[i], bucket.Counts[i]);
                var g = bucket.Parameters[i].grad;
                if (g is null) slot.zero_();
                else slot.copy_(Real(g).reshape(-1));
            }
            Mpi.AllReduceSum(bucket.Flat);
            bucket.Flat.div_(WorldSize);
            for (int i = 0; i < bucket.Parameters.Length; i++)
            {
                var p = bucket.Parameters[i];
                var slot = bucket.Flat.narrow(0, bucket.Offsets[i], bucket.Counts[i]);
                var g = p.grad;
                if (g is null)
                {
                    var mean = p.is_complex()
                        ? view_as_complex(slot.view([.. p.shape, 2])).to(p.dtype).clone()
                        : slot.view(p.shape).to(p.dtype).clone();
                    p.grad = mean.MoveToOuterDisposeScope();
                }
                else
                {
                    var real = Real(g);
                    real.copy_(slot.view(real.shape));
                }
            }
        }
    }

    /// <summary>
    /// <see cref="ReduceGradients"/>, then <c>optimizer.step()</c>: the step every rank takes after <c>backward</c>
    /// when no gradient clipping comes between.
    /// </summary>
    /// <param name="optimizer">The optimizer over the module's parameters.</param>
    public void Step(optim.Optimizer optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        ReduceGradients();
        optimizer.step();
    }

    /// <summary>
    /// Call at the end of each epoch, before evaluating or saving: averages the batch-norm running statistics over
    /// the ranks, <c>m &lt;- (1/W) sum_r m_r</c> and <c>v &lt;- (1/W) sum_r v_r</c> for every floating-point buffer named
    /// <c>running_mean</c> or <c>running_var</c> (PyTorch's batch norms, Discretax's <c>EquinoxBatchNorm</c>), and copies
    /// every other buffer (such as <c>num_batches_tracked</c>) from rank 0.
    /// </summary>
    public void SynchronizeBuffers()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var (name, b) in Module.named_buffers())
        {
            string leaf = name[(name.LastIndexOf('.') + 1)..];
            bool runningStatistic = leaf is "running_mean" or "running_var" && TensorChecks.IsSummable(b.dtype);
            if (!runningStatistic)
            {
                BroadcastInPlace(b);
                continue;
            }
            var work = b.is_contiguous() ? b : b.contiguous();
            Mpi.AllReduceSum(work);
            work.div_(WorldSize);
            if (!ReferenceEquals(work, b)) b.copy_(work);
        }
    }

    /// <summary>Frees the gradient buckets.</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        foreach (var bucket in buckets) bucket.Flat.Dispose();
        buckets.Clear();
    }

    private static void BroadcastInPlace(Tensor t)
    {
        if (t.numel() == 0) return;
        if (t.is_contiguous())
        {
            Mpi.Broadcast(t);
            return;
        }
        var work = t.contiguous();
        Mpi.Broadcast(work);
        t.copy_(work);
    }

    /// <summary>A gradient as real numbers: complex ones as their <c>[..., 2]</c> real view.</summary>
    private static Tensor Real(Tensor g) => g.is_complex() ? view_as_real(g) : g;

    private void LayOutBuckets()
    {
        var seen = new HashSet<nint>();
        var trainable = new List<Parameter>();
        foreach (var p in Module.parameters())
            if (p.requires_grad && seen.Add(p.Handle)) trainable.Add(p);
        // float64 (and complex128) gradients in float64 buckets, the rest in float32 ones; parameters in module order.
        foreach (var wide in new[] { false, true })
        {
            var dtype = wide ? ScalarType.Float64 : ScalarType.Float32;
            var current = new List<(Parameter P, long Count)>();
            long bytes = 0;
            foreach (var p in trainable)
            {
                bool isWide = p.dtype is ScalarType.Float64 or ScalarType.ComplexFloat64;
                if (isWide != wide) continue;
                long count = p.numel() * (p.is_complex() ? 2 : 1);
                long size = count * (wide ? 8 : 4);
                if (current.Count > 0 && bytes + size > BucketBytes)
                {
                    buckets.Add(Bucket.Create(current, dtype));
                    current = [];
                    bytes = 0;
                }
                current.Add((p, count));
                bytes += size;
            }
            if (current.Count > 0) buckets.Add(Bucket.Create(current, dtype));
        }
    }

    private sealed record Bucket(Tensor Flat, Parameter[] Parameters, long[] Offsets, long[] Counts)
    {
        public static Bucket Create(List<(Parameter P, long Count)> items, ScalarType dtype)
        {
            var offsets = new long[items.Count];
            var counts = new long[items.Count];
            long total = 0;
            for (int i = 0; i < items.Count; i++)
            {
                offsets[i] = total;
                counts[i] = items[i].Count;
                total += items[i].Count;
            }
            var flat = zeros(total, dtype: dtype);
            flat.DetachFromDisposeScope();
            return new Bucket(flat, items.Select(x => x.P).ToArray(), offsets, counts);
        }
    }
}
