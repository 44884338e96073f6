// The MNIST-style sequence classifier: trains Sequential(LinearEncoder -> model -> ClassificationHead) on 28x28
// images read as sequences. See docs/sample.md, or run with --help.
if (args.Contains("--distributed"))
{
    // mpirun gives each process a pseudo-terminal and forwards its lines to wherever mpirun's own output goes (often
    // a log): a dumb terminal keeps .NET's console from writing terminal control codes into them. Set before any
    // console use, which is when .NET reads TERM.
    Environment.SetEnvironmentVariable("TERM", "dumb");
}
return MnistClassifier.Cli.CommandLineApp.Run(args);
