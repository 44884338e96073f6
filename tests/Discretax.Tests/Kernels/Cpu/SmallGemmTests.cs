using Discretax.Kernels;
using FluentAssertions;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests.Kernels;

/// <summary>
/// The compiled small-matrix products of the chunk kernels (<see cref="SmallGemm"/>) and the blocked unit-lower inverse
/// against libtorch's matmul and triangular solve, for every option (transposed A, triangular A, lower-only output,
/// accumulate, alpha) and sizes that exercise every tile and edge (not multiples of 4 rows or of the vector width).
/// </summary>
public unsafe class SmallGemmTests
{
    private static readonly (int M, int N, int K)[] Shapes = { (64, 64, 64), (37, 21, 13), (5, 3, 7), (1, 17, 9), (16, 40, 33), (8, 8, 1) };

    private static void Check<T>(ScalarType dtype, double tolerance) where T : unmanaged, System.Numerics.INumber<T>
    {
        if (!SmallGemm.IsSupported) return;   // the kernels run only where AVX2 and FMA exist (the tensor path elsewhere)
        var g = new Generator(3);
        foreach (var (m, n, k) in Shapes)
            foreach (var transA in new[] { false, true })
                foreach (var tri in new[] { Triangle.None, Triangle.Lower, Triangle.Upper })
                    foreach (var lower in new[] { false, true })
                        foreach (var accumulate in new[] { false, true })
                        {
                            if (tri != Triangle.None && m != k) continue;        // triangles are of square A
                            var opA = randn(new long[] { m, k }, dtype: ScalarType.Float64, generator: g);
                            if (tri == Triangle.Lower) opA = opA.tril();
                            if (tri == Triangle.Upper) opA = opA.triu();
                            var stored = (transA ? opA.t() : opA).contiguous().to(dtype);
                            var b = randn(new long[] { k, n }, dtype: ScalarType.Float64, generator: g);
                            var c0 = randn(new long[] { m, n }, dtype: ScalarType.Float64, generator: g);
                            double alpha = -0.75;
                            var expected = (accumulate ? c0 : zeros_like(c0)) + alpha * opA.matmul(b);
                            var bt = b.to(dtype).contiguous();
                            var ct = c0.to(dtype).contiguous();
                            T* pa = (T*)CpuTensorMemory.Pointer<T>(stored, "test"), pb = CpuTensorMemory.Pointer<T>(bt, "test"),
                                pc = CpuTensorMemory.Pointer<T>(ct, "test");
                            T al = typeof(T) == typeof(float) ? (T)(object)(float)alpha : (T)(object)alpha;
                            SmallGemm.Gemm(m, n, k, pa, (int)stored.shape[1], pb, n, pc, n, accumulate, al, tri, lower, transA);
                            var actual = ct.to(ScalarType.Float64);
                            if (lower)
                            {
                                // Only the lower triangle (diagonal included) is promised.
                                var mask = ones(m, n, dtype: ScalarType.Bool).tril();
                                actual = actual.masked_fill(mask.logical_not(), 0);
                                expected = expected.masked_fill(mask.logical_not(), 0);
                            }
                            var err = (actual - expected).abs().max().item<double>();
                            err.Should().BeLessThan(tolerance * Math.Sqrt(k), $"m={m} n={n} k={k} transA={transA} tri={tri} lower={lower} acc={accumulate}");
                        }
    }

    [Fact]
    public void Products_match_matmul_in_float64() => Check<double>(ScalarType.Float64, 1e-13);   // rounding of k-term sums

    [Fact]
    public void Products_match_matmul_in_float32() => Check<float>(ScalarType.Float32, 1e-5);      // float32 rounding

    [Fact]
    public void Transpose_and_mask_are_exact()
    {
        foreach (var (rows, cols) in new[] { (64, 64), (13, 29), (8, 8), (3, 17), (24, 16) })
        {
            var src = randn(new long[] { rows, cols }, generator: new Generator(5));
            var dst = zeros(cols, rows);
            SmallGemm.Transpose(rows, cols, CpuTensorMemory.Pointer<float>(src, "test"), cols, CpuTensorMemory.Pointer<float>(dst, "test"), rows);
            dst.eq(src.t()).all().item<bool>().Should().BeTrue($"{rows} x {cols}");
            var d64 = src.to(ScalarType.Float64).contiguous();
            var t64 = zeros(new long[] { cols, rows }, dtype: ScalarType.Float64);
            SmallGemm.Transpose(rows, cols, CpuTensorMemory.Pointer<double>(d64, "test"), cols, CpuTensorMemory.Pointer<double>(t64, "test"), rows);
            t64.eq(d64.t()).all().item<bool>().Should().BeTrue();
        }
        var c = randn(9, 9);
        var masked = c.clone();
        SmallGemm.MaskUpper(9, 9, CpuTensorMemory.Pointer<float>(masked, "test"), 9, -1);
        masked.eq(c.tril(-1)).all().item<bool>().Should().BeTrue();
    }

    [Fact]
    public void Blocked_unit_lower_inverse_matches_a_triangular_solve()
    {
        // Sizes below, at and across the 16-row blocks and their doubling levels, not powers of two included.
        foreach (int c in new[] { 1, 5, 16, 17, 48, 64, 100, 128 })
        {
            var a = randn(new long[] { c, c }, dtype: ScalarType.Float64, generator: new Generator((ulong)c)) * 0.3;
            var unit = eye(c, dtype: ScalarType.Float64) + a.tril(-1);
            var expected = linalg.solve_triangular(unit, eye(c, dtype: ScalarType.Float64), upper: false);
            var t = zeros(new long[] { c, c }, dtype: ScalarType.Float64);
            var x = zeros(new long[] { c, c }, dtype: ScalarType.Float64);
            var ac = a.contiguous();   // its diagonal and upper part are not read
            DeltaRuleChunkCpu.InvertUnitLower(c, CpuTensorMemory.Pointer<double>(ac, "test"), CpuTensorMemory.Pointer<double>(t, "test"),
                CpuTensorMemory.Pointer<double>(x, "test"));
            // Forward substitution in float64 on well-conditioned matrices: ~1e-15 relative observed.
            TestUtil.RelRms(t, expected).Should().BeLessThan(1e-12, $"C = {c}");
            t.triu(1).abs().max().item<double>().Should().Be(0, "zeros above the diagonal");
        }
    }
}
