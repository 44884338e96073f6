using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Utilities;

/// <summary>
/// Parameter counts of a module and of each of its submodules, like discretax's <c>count_params</c> and
/// <c>print_param_tree</c>.
/// </summary>
public static class ParameterSummary
{
    /// <summary>The number of scalar parameters of <paramref name="module"/> (and its submodules).</summary>
    /// <param name="module">The module.</param>
    /// <param name="trainableOnly">Count only parameters that require gradients.</param>
    public static long Count(nn.Module module, bool trainableOnly = false)
    {
        ArgumentNullException.ThrowIfNull(module);
        long total = 0;
        foreach (var p in module.parameters())
            if (!trainableOnly || p.requires_grad) total += p.numel();
        return total;
    }

    /// <summary>
    /// A tree with one line per module: its name, type and parameter count (own parameters and everything below),
    /// then one line per parameter with its shape; the last line is the total.
    /// </summary>
    /// <param name="module">The module.</param>
    /// <param name="name">The name of the root line.</param>
    public static string Tree(nn.Module module, string name = "model")
    {
        ArgumentNullException.ThrowIfNull(module);
        var sb = new StringBuilder();
        Append(sb, module, name, 0);
        sb.Append("Total parameters: ").Append(Count(module).ToString("N0", System.Globalization.CultureInfo.InvariantCulture)).Append('\n');
        return sb.ToString();
    }

    private static void Append(StringBuilder sb, nn.Module module, string name, int depth)
    {
        string indent = new(' ', 2 * depth);
        sb.Append(indent).Append(name).Append(" (").Append(module.GetType().Name).Append("): ")
          .Append(Count(module).ToString("N0", System.Globalization.CultureInfo.InvariantCulture)).Append('\n');
        foreach (var (pname, p) in module.named_parameters(recurse: false))
            sb.Append(indent).Append("  ").Append(pname).Append(' ').Append(Check.Shape(p.shape)).Append(": ")
              .Append(p.numel().ToString("N0", System.Globalization.CultureInfo.InvariantCulture)).Append('\n');
        foreach (var (cname, child) in module.named_children())
            Append(sb, child, cname, depth + 1);
    }
}
