using TextGenerator.Training;

namespace TextGenerator.Cli;

/// <summary>Everything the command line parsed for one run.</summary>
internal sealed record RunSettings(string Model, string? Text, int Hidden, int Blocks, string Device, string? Save, string? Load,
    string? Plot, TrainSettings Training)
{
    /// <summary>The fortunes folder used without <c>--text</c> (a parameter for tests).</summary>
    public string FortunesFolder { get; init; } = Data.Documents.DebianFortunes;
}
