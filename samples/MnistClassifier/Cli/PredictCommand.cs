using SampleSupport;
using System.Globalization;
using MnistClassifier.Data;
using MnistClassifier.Display;
using MnistClassifier.Models;
using MnistClassifier.Training;
using Spectre.Console;
using TorchSharp;

namespace MnistClassifier.Cli;

/// <summary>The <c>predict</c> command: shows one test image in the terminal with the checkpoint's top-3 classes.</summary>
public static class PredictCommand
{
    /// <summary>Runs the command; returns the exit code.</summary>
    /// <param name="checkpointPath">The checkpoint (saved with <c>--save</c>).</param>
    /// <param name="imageIndex">The test image's index.</param>
    /// <param name="dataDirectory">The <c>--data</c> directory, or null.</param>
    /// <param name="console">Where to write.</param>
    public static int Execute(string checkpointPath, int imageIndex, string? dataDirectory, IAnsiConsole console)
    {
        ArgumentNullException.ThrowIfNull(console);
        var source = DataSource.Resolve(dataDirectory);
        var data = MnistData.Load(source);
        if (imageIndex < 0 || imageIndex >= data.Test.Count)
            throw new OptionException("--image", $"--image {imageIndex} must be in [0, {data.Test.Count}) for {source.Description}");
        var (network, spec) = Checkpoint.Load(checkpointPath);
        using var net = network;
        var one = data.Test.Select(new[] { imageIndex });
        using var x = SequenceEncoding.ToTensor(one.Images, spec.Layout);
        if (x.shape[1] != spec.SequenceLength || x.shape[2] != spec.InputFeatures)
            throw new CheckpointException(checkpointPath, $"was trained on sequences of {spec.SequenceLength} x {spec.InputFeatures}; this data gives {x.shape[1]} x {x.shape[2]}");
        using var probabilities = Trainer.Predict(net, x, 1);
        var p = probabilities[0].data<double>().ToArray();
        int label = one.Labels[0];
        int predicted = Array.IndexOf(p, p.Max());
        string Name(int c) => c < source.ClassNames.Count ? source.ClassNames[c] : c.ToString(CultureInfo.InvariantCulture);

        console.MarkupLineInterpolated($"test image [bold]{imageIndex}[/] of {source.Description}; model {spec.Describe()}");
        console.Write(ConsoleReport.Image(console, one.Images, 0));
        console.MarkupLineInterpolated($"true class: [bold]{label} {Name(label)}[/]   predicted: [bold {(predicted == label ? "green" : "red")}]{predicted} {Name(predicted)}[/]");
        console.Write(ConsoleReport.TopClasses(p, source.ClassNames, label));
        return 0;
    }
}
