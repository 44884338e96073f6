using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests;

/// <summary>Scalar double-precision references, independent of libtorch, for the hand-computed tests.</summary>
public static class Reference
{
    public static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));
    public static double Silu(double x) => x * Sigmoid(x);

    /// <summary>GELU (erf form) via a high-accuracy erf (Abramowitz-Stegun 7.1.26 is too coarse; use series/continued fraction).</summary>
    public static double Gelu(double x) => 0.5 * x * (1 + Erf(x / Math.Sqrt(2)));

    public static double Erf(double x)
    {
        // Maclaurin series for |x| < 3 (converges fast enough in double), complementary continued fraction beyond.
        double ax = Math.Abs(x);
        double r;
        if (ax < 3)
        {
            double term = ax, sum = ax, x2 = ax * ax;
            for (int n = 1; n < 200; n++)
            {
                term *= -x2 / n;
                double add = term / (2 * n + 1);
                sum += add;
                if (Math.Abs(add) < 1e-17 * Math.Abs(sum)) break;
            }
            r = 2 / Math.Sqrt(Math.PI) * sum;
        }
        else
        {
            double f = 0;
            for (int n = 60; n >= 1; n--) f = n / 2.0 / (ax + f);
            r = 1 - Math.Exp(-ax * ax) / Math.Sqrt(Math.PI) / (ax + f);
        }
        return x < 0 ? -r : r;
    }

    /// <summary>y = W x + b with W [out, in].</summary>
    public static double[] Linear(double[] x, double[,] w, double[]? b = null)
    {
        int o = w.GetLength(0), n = w.GetLength(1);
        var y = new double[o];
        for (int i = 0; i < o; i++)
        {
            double s = b?[i] ?? 0;
            for (int j = 0; j < n; j++) s += w[i, j] * x[j];
            y[i] = s;
        }
        return y;
    }

    /// <summary>A deterministic matrix with entries in about [-1, 1].</summary>
    public static double[,] Matrix(int rows, int cols, int salt)
    {
        var m = new double[rows, cols];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
                m[i, j] = Math.Sin(1.3 * i + 0.7 * j + salt) * 0.9;
        return m;
    }

    public static double[] Vector(int n, int salt)
    {
        var v = new double[n];
        for (int i = 0; i < n; i++) v[i] = Math.Cos(0.9 * i + salt) * 0.8;
        return v;
    }

    public static Tensor ToTensor(double[,] m) => tensor(m.Cast<double>().ToArray(), new long[] { m.GetLength(0), m.GetLength(1) }, ScalarType.Float64);

    public static Tensor ToTensor(double[] v) => tensor(v, ScalarType.Float64);

    /// <summary>Overwrites a parameter with the given values (no autograd).</summary>
    public static void Set(Tensor parameter, Tensor values)
    {
        using var _ = no_grad();
        parameter.copy_(values);
    }
}
