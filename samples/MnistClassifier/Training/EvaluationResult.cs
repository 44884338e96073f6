namespace MnistClassifier.Training;

/// <summary>The result of evaluating a classifier on a labelled set.</summary>
public sealed class EvaluationResult
{
    /// <summary>Creates the result.</summary>
    /// <param name="loss">The mean loss (NLL).</param>
    /// <param name="confusion">Counts <c>[true class, predicted class]</c>.</param>
    public EvaluationResult(double loss, long[,] confusion)
    {
        ArgumentNullException.ThrowIfNull(confusion);
        if (confusion.GetLength(0) != confusion.GetLength(1))
            throw new ArgumentException($"Expected a square matrix; got {confusion.GetLength(0)}x{confusion.GetLength(1)}.", nameof(confusion));
        Loss = loss;
        Confusion = confusion;
    }

    /// <summary>The mean loss (NLL).</summary>
    public double Loss { get; }

    /// <summary>Counts <c>[true class, predicted class]</c>.</summary>
    public long[,] Confusion { get; }

    /// <summary>The number of classes.</summary>
    public int Classes => Confusion.GetLength(0);

    /// <summary>The number of images evaluated.</summary>
    public long Count
    {
        get
        {
            long n = 0;
            foreach (var c in Confusion) n += c;
            return n;
        }
    }

    /// <summary>The share of images whose predicted class is the true one.</summary>
    public double Accuracy
    {
        get
        {
            long right = 0;
            for (int c = 0; c < Classes; c++) right += Confusion[c, c];
            long n = Count;
            return n == 0 ? 0 : (double)right / n;
        }
    }

    /// <summary>The number of images of class <paramref name="c"/>.</summary>
    /// <param name="c">The class.</param>
    public long Support(int c)
    {
        long n = 0;
        for (int p = 0; p < Classes; p++) n += Confusion[c, p];
        return n;
    }

    /// <summary>The accuracy on images of class <paramref name="c"/> (its recall); NaN when it has none.</summary>
    /// <param name="c">The class.</param>
    public double ClassAccuracy(int c)
    {
        long n = Support(c);
        return n == 0 ? double.NaN : (double)Confusion[c, c] / n;
    }
}
