namespace SampleSupport;

/// <summary>Checks, before a run starts, that the files it will write can be written.</summary>
public static class OutputPath
{
    /// <summary>
    /// Throws an <see cref="OptionException"/> unless <paramref name="path"/> can be created or overwritten: its
    /// folder is created if missing, and the file is opened for writing (and removed again if it did not exist), so
    /// that an unwritable path fails at once, not after training.
    /// </summary>
    /// <param name="option">The option that named the path, as the user typed it (e.g. <c>--save</c>).</param>
    /// <param name="path">The file.</param>
    /// <param name="shownPath">The path to name in the error (null: <paramref name="path"/>).</param>
    public static void CheckWritable(string option, string path, string? shownPath = null)
    {
        ArgumentNullException.ThrowIfNull(option);
        ArgumentNullException.ThrowIfNull(path);
        string shown = shownPath ?? path;
        string full;
        try
        {
            full = Path.GetFullPath(path);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            throw new OptionException(option, $"{option} {shown} is not a valid path: {Messages.OneLine(e)}", e);
        }
        if (path.Length == 0 || Directory.Exists(full) || path.EndsWith(Path.DirectorySeparatorChar) || path.EndsWith(Path.AltDirectorySeparatorChar))
            throw new OptionException(option, $"{option} {shown} is a folder; give a file name");
        try
        {
            var dir = Path.GetDirectoryName(full);
            if (!string.IsNullOrEmpty(dir))
            {
                var blocking = FirstFileAmongAncestors(dir);
                if (blocking is not null) throw new OptionException(option, $"{option} {shown} cannot be written: {blocking} is a file, not a folder");
                Directory.CreateDirectory(dir);
            }
            bool existed = File.Exists(full);
            using (new FileStream(full, FileMode.OpenOrCreate, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete)) { }
            if (!existed) File.Delete(full);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new OptionException(option, $"{option} {shown} cannot be written: {Messages.OneLine(e)}", e);
        }
    }

    private static string? FirstFileAmongAncestors(string dir)
    {
        for (var d = dir; !string.IsNullOrEmpty(d); d = Path.GetDirectoryName(d))
        {
            if (Directory.Exists(d)) return null;
            if (File.Exists(d)) return d;
        }
        return null;
    }
}
