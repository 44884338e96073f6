// The MNIST-style sequence classifier: trains Sequential(LinearEncoder -> model -> ClassificationHead) on 28x28
// images read as sequences. See docs/sample.md, or run with --help.
return MnistClassifier.Cli.CommandLineApp.Run(args);
