using MnistClassifier.Data;
using MnistClassifier.Training;

namespace MnistClassifier.Cli;

/// <summary>The settings of a training or evaluation run, as parsed from the command line.</summary>
/// <param name="Model">The model name.</param>
/// <param name="Layout">The sequence layout.</param>
/// <param name="DataDirectory">The <c>--data</c> directory, or null.</param>
/// <param name="Training">The optimization settings.</param>
/// <param name="Hidden">The hidden size.</param>
/// <param name="Blocks">The number of blocks.</param>
/// <param name="DropRate">The dropout probability.</param>
/// <param name="Device">auto, cpu or cuda.</param>
/// <param name="Threads">CPU threads for TorchSharp, or null for its default.</param>
/// <param name="SavePath">Where to save the checkpoint, or null.</param>
/// <param name="LoadPath">A checkpoint to start from, or null.</param>
/// <param name="EvalOnly">Only evaluate the loaded checkpoint.</param>
/// <param name="MetricsPath">Where to write per-epoch metrics (.csv or .json), or null.</param>
/// <param name="PlotPath">Where to write the PNG of the curves, or null.</param>
/// <param name="Limit">Use only this many training images, or null for all.</param>
/// <param name="Explicit">The model options the user gave explicitly (name to value), checked against a loaded checkpoint.</param>
/// <param name="AutoEpochs">No <c>--epochs</c> was given: use <see cref="TrainingOptions.AutoEpochs"/> for the data found.</param>
/// <param name="Block">The <c>--block</c> style (<see cref="Models.BlockStyles"/>).</param>
/// <param name="Distributed"><c>--distributed</c>: data-parallel training over MPI, in a process started by <c>mpirun</c>
/// (MPI is initialized by the caller).</param>
public sealed record RunSettings(string Model, SequenceLayout Layout, string? DataDirectory, TrainingOptions Training,
    int Hidden, int Blocks, double DropRate, string Device, int? Threads, string? SavePath, string? LoadPath, bool EvalOnly,
    string? MetricsPath, string? PlotPath, int? Limit, IReadOnlyDictionary<string, string> Explicit, bool AutoEpochs = false,
    string Block = Models.BlockStyles.Library, bool Distributed = false);
