// The byte-level text generator: trains a causal language model (any Discretax model, or a TorchSharp LSTM/GRU
// baseline) on a text file and samples text from it. See docs/text-generator.md, or run with --help.
return TextGenerator.Cli.CommandLineApp.Run(args);
