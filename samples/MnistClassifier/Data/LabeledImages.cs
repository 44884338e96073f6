namespace MnistClassifier.Data;

/// <summary>Images with one class label each, as read from an image file and a label file of the same split.</summary>
public sealed class LabeledImages
{
    /// <summary>Pairs images with labels.</summary>
    /// <param name="images">The images.</param>
    /// <param name="labels">One label per image, each in [0, <paramref name="classes"/>).</param>
    /// <param name="classes">The number of classes.</param>
    public LabeledImages(IdxImages images, byte[] labels, int classes = 10)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(labels);
        if (labels.Length != images.Count)
            throw new ArgumentException($"Expected one label per image ({images.Count}); got {labels.Length} labels.", nameof(labels));
        for (int i = 0; i < labels.Length; i++)
            if (labels[i] >= classes)
                throw new ArgumentException($"Label {i} is {labels[i]}; expected a class in [0, {classes}).", nameof(labels));
        Images = images;
        Labels = labels;
        Classes = classes;
    }

    /// <summary>The images.</summary>
    public IdxImages Images { get; }

    /// <summary>The labels, one per image.</summary>
    public byte[] Labels { get; }

    /// <summary>The number of classes.</summary>
    public int Classes { get; }

    /// <summary>The number of images.</summary>
    public int Count => Images.Count;

    /// <summary>Reads a split from its image and label files, checking that they agree.</summary>
    /// <param name="imagesPath">The IDX3 image file.</param>
    /// <param name="labelsPath">The IDX1 label file.</param>
    /// <param name="classes">The number of classes.</param>
    public static LabeledImages Read(string imagesPath, string labelsPath, int classes = 10)
    {
        var images = IdxFile.ReadImages(imagesPath);
        var labels = IdxFile.ReadLabels(labelsPath);
        if (labels.Length != images.Count)
            throw new DataFileException(labelsPath, $"has {labels.Length} labels but {Path.GetFileName(imagesPath)} has {images.Count} images");
        int bad = Array.FindIndex(labels, l => l >= classes);
        if (bad >= 0)
            throw new DataFileException(labelsPath, $"label {bad} is {labels[bad]}, expected a class in [0, {classes})");
        return new LabeledImages(images, labels, classes);
    }

    /// <summary>The first <paramref name="count"/> images (all when <paramref name="count"/> is larger).</summary>
    /// <param name="count">How many to keep (at least 1).</param>
    public LabeledImages Take(int count)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, $"Expected at least 1 image; got {count}.");
        if (count >= Count) return this;
        return Select(Enumerable.Range(0, count).ToArray());
    }

    /// <summary>The images at the given indices, in that order.</summary>
    /// <param name="indices">Indices in [0, Count).</param>
    public LabeledImages Select(IReadOnlyList<int> indices)
    {
        ArgumentNullException.ThrowIfNull(indices);
        return new LabeledImages(Images.Select(indices), indices.Select(i => Labels[i]).ToArray(), Classes);
    }

    /// <summary>
    /// A class-balanced random subset: <paramref name="count"/> / classes images of every class, drawn without
    /// replacement with <see cref="FixedRandom"/>(<paramref name="seed"/>), then shuffled with the same generator.
    /// </summary>
    /// <param name="count">The subset size, a multiple of the number of classes.</param>
    /// <param name="seed">The seed.</param>
    public LabeledImages BalancedSubset(int count, ulong seed)
    {
        if (count < Classes || count % Classes != 0)
            throw new ArgumentOutOfRangeException(nameof(count), count, $"Expected a positive multiple of {Classes}; got {count}.");
        int perClass = count / Classes;
        var rng = new FixedRandom(seed);
        var chosen = new List<int>(count);
        for (int c = 0; c < Classes; c++)
        {
            var members = Enumerable.Range(0, Count).Where(i => Labels[i] == c).ToArray();
            if (members.Length < perClass)
                throw new ArgumentOutOfRangeException(nameof(count), count, $"Class {c} has {members.Length} images; {perClass} are needed.");
            rng.Shuffle(members);
            chosen.AddRange(members.Take(perClass).Order());
        }
        var order = chosen.ToArray();
        rng.Shuffle(order);
        return Select(order);
    }
}
