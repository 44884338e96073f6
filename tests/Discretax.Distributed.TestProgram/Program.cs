// The program the MPI tests start with `mpirun --oversubscribe -np 2 dotnet Discretax.Distributed.TestProgram.dll MODE DIR`.
// Each rank writes what it computed to DIR/rankR.txt, one `key=value` line each (flushed at once, so a rank that is
// killed leaves what it had reached); the tests compare the values with hand-computed ones and with each other.
//   checks     collectives of every dtype, their refusals after init, DataParallel against one process, buffers
//   fail-throw rank 1 throws inside Mpi.Run while rank 0 waits in an all-reduce: the job must end with an error
//   fail-exit  rank 1 exits (code 3) without MPI_Finalize while rank 0 waits in an all-reduce: the job must end with an error
//   fail-return  the same with a plain return from Main (exit code 0): the job must end with an error too
using System.Globalization;
using System.Security.Cryptography;
using Discretax.Distributed;
using Discretax.Distributed.TestProgram;
using TorchSharp;
using static TorchSharp.torch;

if (args.Length != 2)
{
    Console.Error.WriteLine("usage: Discretax.Distributed.TestProgram checks|fail-throw|fail-exit|fail-return OUTPUT_DIRECTORY");
    return 2;
}
string mode = args[0], directory = args[1];
torch.set_num_threads(1);
switch (mode)
{
    case "checks":
        return Mpi.Run(() => Checks.Run(directory));
    case "fail-throw":
        return Mpi.Run(() =>
        {
            using var log = new RankLog(directory);
            log.Write("started", 1);
            if (Mpi.Rank == 1) throw new InvalidOperationException("deliberate failure on rank 1");
            using var t = ones(4);
            Mpi.AllReduceSum(t);   // rank 1 never comes
            log.Write("finished", 1);
            return 0;
        });
    case "fail-exit":
    case "fail-return":
        {
            Mpi.Initialize();
            using var log = new RankLog(directory);
            log.Write("started", 1);
            if (Mpi.Rank == 1)
            {
                log.Dispose();
                // No MPI_Finalize: exit code 3, or a plain return from Main (exit code 0).
                if (mode == "fail-exit") Environment.Exit(3);
                return 0;
            }
            using var t = ones(4);
            Mpi.AllReduceSum(t);
            log.Write("finished", 1);
            Mpi.Shutdown();
            return 0;
        }
    default:
        Console.Error.WriteLine($"unknown mode '{mode}'");
        return 2;
}

namespace Discretax.Distributed.TestProgram
{
    using Discretax.Blocks;
    using Discretax.Encoders;
    using Discretax.Heads;
    using Discretax.Layers;
    using Discretax.Models;

    /// <summary>This rank's result file, DIR/rankR.txt.</summary>
    internal sealed class RankLog : IDisposable
    {
        private readonly StreamWriter writer;

        public RankLog(string directory)
        {
            Directory.CreateDirectory(directory);
            writer = new StreamWriter(Path.Combine(directory, $"rank{Mpi.Rank}.txt")) { AutoFlush = true };
        }

        public void Write(string key, object value) =>
            writer.WriteLine($"{key}={Convert.ToString(value, CultureInfo.InvariantCulture)}");

        public void Values(string key, Tensor t) =>
            Write(key, string.Join(" ", t.to(ScalarType.Float64).data<double>().ToArray().Select(v => v.ToString("R", CultureInfo.InvariantCulture))));

        public void Refusal(string key, Action action)
        {
            try
            {
                action();
                Write(key, "no exception");
            }
            catch (Exception e)
            {
                string param = e is ArgumentException a ? a.ParamName ?? "" : "";
                Write(key, $"{e.GetType().Name}|{param}|{e.Message.ReplaceLineEndings(" ")}");
            }
        }

        public void Dispose() => writer.Dispose();
    }

    /// <summary>Parameters of every dtype DataParallel reduces: float32, bfloat16 and complex64 in a float32 bucket,
    /// float64 and complex128 in a float64 one.</summary>
    internal sealed class Holder : nn.Module
    {
        public Holder() : base(nameof(Holder))
        {
            foreach (var (name, dtype) in new[] { ("f32", ScalarType.Float32), ("bf16", ScalarType.BFloat16), ("f16", ScalarType.Float16),
                         ("c64", ScalarType.ComplexFloat32), ("f64", ScalarType.Float64), ("c128", ScalarType.ComplexFloat64) })
                register_parameter(name, new TorchSharp.Modules.Parameter(zeros(2, dtype)));
        }
    }

    internal static class Checks
    {
        public static int Run(string directory)
        {
            using var log = new RankLog(directory);
            int rank = Mpi.Rank, world = Mpi.WorldSize;
            log.Write("world", world);
            log.Write("version", Mpi.LibraryVersion);
            Collectives(log, rank);
            Refusals(log);
            Equality(log, rank, world);
            GradientDtypes(log, rank);
            MissingGradient(log, rank);
            Buffers(log, rank);
            Mpi.Barrier();
            log.Write("done", 1);
            return 0;
        }

        // Sums and broadcasts of every dtype; the test knows what each rank put in.
        private static void Collectives(RankLog log, int r)
        {
            using var scope = NewDisposeScope();
            // Exact in every dtype: sum over r of (1.5 + 10 r, -2 + 0.25 r, 0.125 (r + 1), 3 - 3 r).
            double[] Linear(int q) => [1.5 + 10 * q, -2 + 0.25 * q, 0.125 * (q + 1), 3 - 3 * q];
            var f32 = tensor(Linear(r), ScalarType.Float32);
            Mpi.AllReduceSum(f32);
            log.Values("sum.float32", f32);
            // float64 only: 1 + 2^-40 (r + 1) sums to W + 2^-40 W (W + 1) / 2 exactly.
            var f64 = tensor(Linear(r).Append(1 + Math.Pow(2, -40) * (r + 1)).ToArray(), ScalarType.Float64);
            Mpi.AllReduceSum(f64);
            log.Values("sum.float64", f64);
            // bfloat16 (8 significant bits): rank 0 (256, 258, 1.5, -2^-7), rank 1 (1, 1, 2.5, 2^-7). float32 sums
            // 257, 259, 4, 0 round (to nearest, ties to even) to 256, 260, 4, 0.
            double[] bf = r == 0 ? [256, 258, 1.5, -0.0078125] : r == 1 ? [1, 1, 2.5, 0.0078125] : [0, 0, 0, 0];
            var b16 = tensor(bf, ScalarType.Float64).to(ScalarType.BFloat16);
            Mpi.AllReduceSum(b16);
            log.Write("sum.bfloat16.dtype", b16.dtype);
            log.Values("sum.bfloat16", b16);
            // float16 (11 significant bits): 2048 + 1 = 2049 -> 2048, 2050 + 1 = 2051 -> 2052, 0.5 + 0.25, 65504 - 65504.
            double[] hf = r == 0 ? [2048, 2050, 0.5, 65504] : r == 1 ? [1, 1, 0.25, -65504] : [0, 0, 0, 0];
            var f16 = tensor(hf, ScalarType.Float64).to(ScalarType.Float16);
            Mpi.AllReduceSum(f16);
            log.Values("sum.float16", f16);

            // Broadcasts: rank q holds 100 q + i; every rank ends with the root's (rank 0, and the last rank once).
            Tensor Filled(ScalarType dtype) => (arange(6, ScalarType.Float64) + 100 * r).to(dtype);
            var bf32 = Filled(ScalarType.Float32);
            Mpi.Broadcast(bf32, root: Mpi.WorldSize - 1);
            log.Values("bcast.float32.rootlast", bf32);
            foreach (var dtype in new[] { ScalarType.Float64, ScalarType.BFloat16, ScalarType.Float16, ScalarType.Int64, ScalarType.Int32, ScalarType.Byte })
            {
                var t = Filled(dtype).reshape(2, 3);
                Mpi.Broadcast(t);
                log.Values($"bcast.{dtype}", t.reshape(-1));
            }
            var flag = tensor(r == 0);
            Mpi.Broadcast(flag);
            log.Write("bcast.bool", flag.item<bool>());

            // Longer than one MPI call: pieces of 3 elements (3 bytes for the broadcast, across element boundaries).
            int saved = Mpi.MaxCount;
            Mpi.MaxCount = 3;
            try
            {
                var longSum = arange(10, ScalarType.Float64) * (r + 1);
                Mpi.AllReduceSum(longSum);
                log.Values("sum.pieces", longSum);
                var longCast = arange(10, ScalarType.Float32) + 100 * r;
                Mpi.Broadcast(longCast);
                log.Values("bcast.pieces", longCast);
            }
            finally
            {
                Mpi.MaxCount = saved;
            }

            // A parameter (a leaf that requires grad) is summed in place, bfloat16 one too.
            var leaf = tensor(new[] { 1.0f + r, 2.0f }).to(ScalarType.BFloat16).requires_grad_();
            Mpi.AllReduceSum(leaf);
            log.Values("sum.leaf", leaf.detach());
        }

        // The refusals hold with MPI live, too; every rank throws the same, before any native call.
        private static void Refusals(RankLog log)
        {
            using var scope = NewDisposeScope();
            log.Refusal("refuse.noncontiguous", () => Mpi.AllReduceSum(ones(2, 3).t()));
            log.Refusal("refuse.meta", () => Mpi.AllReduceSum(empty(4, device: torch.META)));
            log.Refusal("refuse.int64", () => Mpi.AllReduceSum(ones(4, ScalarType.Int64)));
            log.Refusal("refuse.complex", () => Mpi.AllReduceSum(ones(4, ScalarType.ComplexFloat32)));
            log.Refusal("refuse.bcast.noncontiguous", () => Mpi.Broadcast(ones(4, 4).narrow(1, 0, 2)));
            log.Refusal("refuse.root", () => Mpi.Broadcast(ones(4), root: 5));
            var disposed = ones(3);
            disposed.Dispose();
            log.Refusal("refuse.disposed", () => Mpi.AllReduceSum(disposed));
            log.Refusal("refuse.twice", () => Mpi.Initialize());
        }

        private static nn.Module<Tensor, Tensor> Network() =>
            nn.Sequential(
                ("encoder", new LinearEncoder(3, 8)),
                ("model", new LRU(8, numBlocks: 1, stateDim: 4, dropRate: 0, norm: NormKind.Layer)),
                ("head", new ClassificationHead(8, 3)));

        // N steps of DataParallel on shards of a batch of 8 against one process on the whole batch, in float64.
        private static void Equality(RankLog log, int rank, int world)
        {
            const int steps = 5, batch = 8;
            torch.manual_seed(1234);
            using var net = Network();
            net.to(ScalarType.Float64);
            torch.manual_seed(1234);
            using var reference = Network();
            reference.to(ScalarType.Float64);
            using var initial = Flat(net);
            using (no_grad())
                if (rank != 0)
                    foreach (var p in net.parameters()) p.add_(0.5 * rank);   // the broadcast must undo this

            // Small buckets: several of them, and parameters larger than one bucket.
            using var dp = new DataParallel(net, bucketBytes: 512);
            log.Write("dp.buckets", dp.BucketCount);
            using (var afterBroadcast = Flat(net)) log.Write("dp.broadcast_diff", (afterBroadcast - initial).abs().max().item<double>());

            using var g = new Generator(99);
            using var x = randn([batch, 5, 3], ScalarType.Float64, generator: g);
            using var y = randint(0, 3, [batch], generator: g);
            using var opt = optim.AdamW(net.parameters(), lr: 0.01);
            using var optRef = optim.AdamW(reference.parameters(), lr: 0.01);
            net.train();
            reference.train();
            for (int step = 0; step < steps; step++)
            {
                using var scope = NewDisposeScope();
                using var shard = tensor(dp.ShardIndices(batch, epoch: step, seed: 7));
                opt.zero_grad();
                nn.functional.nll_loss(net.forward(x.index_select(0, shard)), y.index_select(0, shard)).backward();
                dp.ReduceGradients();
                nn.utils.clip_grad_norm_(net.parameters(), 1.0);
                opt.step();

                optRef.zero_grad();
                nn.functional.nll_loss(reference.forward(x), y).backward();
                nn.utils.clip_grad_norm_(reference.parameters(), 1.0);
                optRef.step();
            }
            using var trained = Flat(net);
            using var expected = Flat(reference);
            log.Write("dp.max_diff", (trained - expected).abs().max().item<double>());
            log.Write("dp.moved", (trained - initial).abs().max().item<double>());
            log.Write("dp.hash", Convert.ToHexString(SHA256.HashData(trained.bytes)));
            log.Write("dp.parameters", trained.numel());

            // A world of W: W shards of batch / W. The shards of one epoch are disjoint and cover the batch.
            log.Write("shard.epoch0", string.Join(" ", dp.ShardIndices(batch, epoch: 0, seed: 7)));
        }

        // Gradients of every parameter dtype, set by hand: rank q's gradient is (q + 1) times a base value.
        private static void GradientDtypes(RankLog log, int r)
        {
            using var scope = NewDisposeScope();
            using var holder = new Holder();
            using var dp = new DataParallel(holder);
            log.Write("dtypes.buckets", dp.BucketCount);
            foreach (var (name, p) in holder.named_parameters())
            {
                using var basis = p.is_complex()
                    ? complex(tensor(new[] { 1.0, -0.5 }), tensor(new[] { 2.0, 0.25 })).to(p.dtype)
                    : tensor(new[] { 1.0, -0.5 }).to(p.dtype);
                p.grad = (basis * (r + 1)).MoveToOuterDisposeScope();
            }
            dp.ReduceGradients();
            foreach (var (name, p) in holder.named_parameters())
            {
                log.Write($"dtypes.{name}.dtype", p.grad!.dtype);
                log.Values($"dtypes.{name}", p.is_complex() ? view_as_real(p.grad!).reshape(-1) : p.grad!);
            }
        }

        // A parameter without a gradient on rank 1 (unused there) contributes zeros and receives the mean.
        private static void MissingGradient(RankLog log, int r)
        {
            using var scope = NewDisposeScope();
            using var a = nn.Linear(2, 1, hasBias: false, dtype: ScalarType.Float64);
            using var b = nn.Linear(1, 1, hasBias: false, dtype: ScalarType.Float64);
            using var net = nn.Sequential(("a", a), ("b", b));
            using var dp = new DataParallel(net);
            // Rank 0: d/da sum(a) + sum(b) = (1, 1), d/db = 1. Rank 1: d/da 2 sum(a) = (2, 2), b unused.
            var loss = r == 0 ? a.weight!.sum() + b.weight!.sum() : 2 * a.weight!.sum();
            loss.backward();
            log.Write("missing.before", b.weight!.grad is null ? "none" : "some");
            dp.ReduceGradients();
            log.Values("missing.a", a.weight!.grad!.reshape(-1));
            log.Values("missing.b", b.weight!.grad!.reshape(-1));
        }

        // Running statistics averaged, other buffers from rank 0.
        private static void Buffers(RankLog log, int r)
        {
            using var scope = NewDisposeScope();
            using var bn = nn.BatchNorm1d(3);
            using var ebn = new EquinoxBatchNorm(3);
            using var net = nn.Sequential(("bn", bn), ("ebn", ebn));
            using var dp = new DataParallel(net);
            using (no_grad())
            {
                foreach (var (name, b) in net.named_buffers())
                {
                    if (name.EndsWith("running_mean")) b.copy_(tensor(new[] { r + 1.0f, 2.0f * r, -r }));
                    else if (name.EndsWith("running_var")) b.copy_(tensor(new[] { 1.0f + r, 4.0f, 0.5f + r }));
                    else b.fill_(7 + r);   // num_batches_tracked
                }
            }
            dp.SynchronizeBuffers();
            foreach (var (name, b) in net.named_buffers()) log.Values($"buffer.{name}", b.reshape(-1));
        }

        /// <summary>All parameters as one float64 vector.</summary>
        private static Tensor Flat(nn.Module module)
        {
            using var scope = NewDisposeScope();
            return cat(module.parameters().Select(p => p.detach().reshape(-1).to(ScalarType.Float64)).ToList(), 0).MoveToOuterDisposeScope();
        }
    }
}
