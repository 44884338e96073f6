// The libLibTorchSharp.so compatibility patch, compiled by MSBuild's RoslynCodeTaskFactory at build time
// (see Discretax.targets beside this file) and by the test project for its unit tests.
//
// Why: TorchSharp 0.107.0's libLibTorchSharp.so was linked by GCC 13 and lists the symbol version
// GLIBCXX_3.4.32 of libstdc++.so.6 among its version needs. Debian 12 and Ubuntu 22.04 (GCC 12) ship
// libstdc++ up to GLIBCXX_3.4.30, so the dynamic loader refuses the library. The only symbol bound to
// that version is _ZSt21ios_base_library_initv, a link-time marker of GCC 13's <iostream> that no
// relocation uses. Marking the version need weak (vna_flags |= VER_FLG_WEAK) lets glibc's loader accept
// its absence; where the version exists the flag changes nothing.
//
// The code is kept to C# 7.3 and netstandard2.0 so that the task factory can compile it on any SDK.
#if DISCRETAX_ELFPATCH_WITHOUT_TASK
#nullable disable
#endif
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace Discretax.Build
{
    /// <summary>One <c>Elf64_Vernaux</c> entry of an ELF file's version-needs section.</summary>
    public sealed class ElfVersionNeed
    {
        /// <summary>Creates an entry description.</summary>
        public ElfVersionNeed(string library, string version, ushort flags, long flagsOffset)
        {
            Library = library;
            Version = version;
            Flags = flags;
            FlagsOffset = flagsOffset;
        }

        /// <summary>The needed library (the <c>vn_file</c> of the owning <c>Elf64_Verneed</c>).</summary>
        public string Library { get; private set; }

        /// <summary>The needed version name, for example <c>GLIBCXX_3.4.32</c>.</summary>
        public string Version { get; private set; }

        /// <summary>The entry's <c>vna_flags</c>.</summary>
        public ushort Flags { get; private set; }

        /// <summary>File offset of the entry's two-byte <c>vna_flags</c> field.</summary>
        public long FlagsOffset { get; private set; }

        /// <summary>Whether <c>VER_FLG_WEAK</c> is set.</summary>
        public bool IsWeak { get { return (Flags & ElfVersionNeeds.VerFlagWeak) != 0; } }
    }

    /// <summary>What <see cref="ElfVersionNeeds.MarkWeak"/> did.</summary>
    public enum ElfPatchOutcome
    {
        /// <summary>The flag was set by this call.</summary>
        Patched,

        /// <summary>The entry was weak already; the file was not written.</summary>
        AlreadyWeak,

        /// <summary>The file does not need that version at all; the file was not written.</summary>
        NotNeeded,
    }

    /// <summary>
    /// Reads and edits the version-needs section (<c>.gnu.version_r</c>, <c>SHT_GNU_verneed</c>) of a
    /// little-endian ELF64 shared object. Anything that is not such a file, or whose tables point outside
    /// the file, is refused with an <see cref="InvalidDataException"/> naming the file and the fault.
    /// </summary>
    public static class ElfVersionNeeds
    {
        /// <summary><c>VER_FLG_WEAK</c>: the loader tolerates the absence of a weak version need.</summary>
        public const ushort VerFlagWeak = 0x2;

        /// <summary><c>SHT_GNU_verneed</c>.</summary>
        public const uint ShtGnuVerneed = 0x6ffffffe;

        private const int Elf64HeaderSize = 64;
        private const int Elf64SectionHeaderSize = 64;
        private const int VerneedSize = 16;
        private const int VernauxSize = 16;

        /// <summary>Lists every version need of the ELF64 file at <paramref name="path"/>.</summary>
        public static IList<ElfVersionNeed> Read(string path)
        {
            byte[] image = File.ReadAllBytes(path);
            return Parse(image, path);
        }

        /// <summary>
        /// Sets <c>VER_FLG_WEAK</c> on the need of <paramref name="version"/> from <paramref name="library"/>,
        /// writing only the two bytes of that entry's <c>vna_flags</c> (in a copy that replaces the file, so other hard
        /// links to it, such as a NuGet cache's, keep the original). Idempotent.
        /// </summary>
        public static ElfPatchOutcome MarkWeak(string path, string library, string version)
        {
            if (string.IsNullOrEmpty(library)) throw new ArgumentException("A library name is required.", "library");
            if (string.IsNullOrEmpty(version)) throw new ArgumentException("A version name is required.", "version");
            IList<ElfVersionNeed> needs = Read(path);
            ElfVersionNeed target = null;
            foreach (ElfVersionNeed need in needs)
            {
                if (need.Library == library && need.Version == version)
                {
                    target = need;
                    break;
                }
            }
            if (target == null) return ElfPatchOutcome.NotNeeded;
            if (target.IsWeak) return ElfPatchOutcome.AlreadyWeak;

            ushort flags = (ushort)(target.Flags | VerFlagWeak);
            // Patch a copy and move it over the file, so the file gets a new inode: an output copy that is a hard
            // link into the NuGet cache (MSBuild's hard-link copy options, or a tool that links files) must not
            // change the cache's library with it.
            string temporary = path + ".discretax-patch";
            File.Copy(path, temporary, true);
            try
            {
                using (FileStream stream = new FileStream(temporary, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
                {
                    stream.Seek(target.FlagsOffset, SeekOrigin.Begin);
                    stream.WriteByte((byte)(flags & 0xff));
                    stream.WriteByte((byte)(flags >> 8));
                }
                File.Delete(path);
                File.Move(temporary, path);
            }
            finally
            {
                if (File.Exists(temporary)) File.Delete(temporary);
            }
            return ElfPatchOutcome.Patched;
        }

        /// <summary>Parses the version needs of an in-memory ELF64 image; <paramref name="name"/> is used in errors.</summary>
        public static IList<ElfVersionNeed> Parse(byte[] image, string name)
        {
            if (image == null) throw new ArgumentNullException("image");
            if (image.Length < Elf64HeaderSize)
                throw Fault(name, "is " + image.Length + " bytes long, shorter than an ELF64 header (64 bytes)");
            if (image[0] != 0x7f || image[1] != (byte)'E' || image[2] != (byte)'L' || image[3] != (byte)'F')
                throw Fault(name, "is not an ELF file (the first four bytes are not 7F 'E' 'L' 'F')");
            if (image[4] != 2) throw Fault(name, "is not a 64-bit ELF file (EI_CLASS is " + image[4] + ", expected 2)");
            if (image[5] != 1) throw Fault(name, "is not a little-endian ELF file (EI_DATA is " + image[5] + ", expected 1)");

            ulong sectionTable = U64(image, 0x28, name);
            int entrySize = U16(image, 0x3a, name);
            long count = U16(image, 0x3c, name);
            if (entrySize != Elf64SectionHeaderSize)
                throw Fault(name, "has section headers of " + entrySize + " bytes, expected 64");
            if (sectionTable == 0) throw Fault(name, "has no section header table");
            if (count == 0)
            {
                // Extended numbering: the real count is the first section header's sh_size.
                count = (long)U64(image, Offset(sectionTable, 32, image, name), name);
            }
            if (sectionTable > (ulong)image.Length || (ulong)count * Elf64SectionHeaderSize > (ulong)image.Length - sectionTable)
                throw Fault(name, "is truncated: its " + count + " section headers at offset " + sectionTable + " end past its " + image.Length + " bytes");

            List<ElfVersionNeed> result = new List<ElfVersionNeed>();
            bool sawSection = false;
            for (long i = 0; i < count; i++)
            {
                long header = (long)sectionTable + i * Elf64SectionHeaderSize;
                if (U32(image, header + 4, name) != ShtGnuVerneed) continue;
                sawSection = true;
                ulong sectionOffset = U64(image, header + 24, name);
                ulong sectionSize = U64(image, header + 32, name);
                uint link = U32(image, header + 40, name);
                uint entries = U32(image, header + 44, name);
                if (sectionOffset > (ulong)image.Length || sectionSize > (ulong)image.Length - sectionOffset)
                    throw Fault(name, "is truncated: its version-needs section ends past the end of the file");
                if (link >= count) throw Fault(name, "has a version-needs section linked to string table " + link + " of " + count + " sections");
                long strings = (long)sectionTable + link * Elf64SectionHeaderSize;
                ulong stringOffset = U64(image, strings + 24, name);
                ulong stringSize = U64(image, strings + 32, name);
                if (stringOffset > (ulong)image.Length || stringSize > (ulong)image.Length - stringOffset)
                    throw Fault(name, "is truncated: its dynamic string table ends past the end of the file");

                long end = (long)(sectionOffset + sectionSize);
                long need = (long)sectionOffset;
                for (uint n = 0; n < entries; n++)
                {
                    if (need < (long)sectionOffset || need + VerneedSize > end)
                        throw Fault(name, "has a version-needs entry outside its section");
                    ushort auxCount = U16(image, need + 2, name);
                    string library = CString(image, stringOffset, stringSize, U32(image, need + 4, name), name);
                    long aux = need + U32(image, need + 8, name);
                    for (int a = 0; a < auxCount; a++)
                    {
                        if (aux < (long)sectionOffset || aux + VernauxSize > end)
                            throw Fault(name, "has a version-needs auxiliary entry outside its section");
                        ushort flags = U16(image, aux + 4, name);
                        string version = CString(image, stringOffset, stringSize, U32(image, aux + 8, name), name);
                        result.Add(new ElfVersionNeed(library, version, flags, aux + 4));
                        uint nextAux = U32(image, aux + 12, name);
                        if (nextAux == 0) break;
                        aux += nextAux;
                    }
                    uint next = U32(image, need + 12, name);
                    if (next == 0) break;
                    need += next;
                }
            }
            if (!sawSection) throw Fault(name, "has no version-needs section (SHT_GNU_verneed)");
            return result;
        }

        private static InvalidDataException Fault(string name, string what)
        {
            return new InvalidDataException("'" + name + "' " + what + ".");
        }

        private static long Offset(ulong baseOffset, long add, byte[] image, string name)
        {
            if (baseOffset > (ulong)image.Length) throw Fault(name, "is truncated at offset " + baseOffset);
            return (long)baseOffset + add;
        }

        private static void Check(byte[] image, long offset, int size, string name)
        {
            if (offset < 0 || offset + size > image.Length)
                throw Fault(name, "is truncated: a " + size + "-byte field at offset " + offset + " lies past its " + image.Length + " bytes");
        }

        private static ushort U16(byte[] image, long offset, string name)
        {
            Check(image, offset, 2, name);
            return (ushort)(image[offset] | image[offset + 1] << 8);
        }

        private static uint U32(byte[] image, long offset, string name)
        {
            Check(image, offset, 4, name);
            return (uint)(image[offset] | image[offset + 1] << 8 | image[offset + 2] << 16 | image[offset + 3] << 24);
        }

        private static ulong U64(byte[] image, long offset, string name)
        {
            Check(image, offset, 8, name);
            return U32(image, offset, name) | (ulong)U32(image, offset + 4, name) << 32;
        }

        private static string CString(byte[] image, ulong tableOffset, ulong tableSize, uint index, string name)
        {
            if (index >= tableSize) throw Fault(name, "names a string at index " + index + " outside its " + tableSize + "-byte string table");
            long start = (long)tableOffset + index;
            long limit = (long)(tableOffset + tableSize);
            long end = start;
            while (end < limit && image[end] != 0) end++;
            if (end == limit) throw Fault(name, "has an unterminated string in its string table");
            return Encoding.ASCII.GetString(image, (int)start, (int)(end - start));
        }
    }

#if !DISCRETAX_ELFPATCH_WITHOUT_TASK
    /// <summary>
    /// MSBuild task: marks the given version needs of the given ELF files weak (see the file comment).
    /// Files that are missing are skipped; files that are not what the patch expects fail the build.
    /// </summary>
    public sealed class DiscretaxMarkVersionNeedsWeak : Microsoft.Build.Utilities.Task
    {
        /// <summary>The ELF files to patch in place (copies in build or publish output, never the package cache).</summary>
        [Microsoft.Build.Framework.Required]
        public Microsoft.Build.Framework.ITaskItem[] Files { get; set; }

        /// <summary>The library whose version needs are edited.</summary>
        public string Library { get; set; }

        /// <summary>Semicolon-separated version names to mark weak.</summary>
        public string Versions { get; set; }

        /// <inheritdoc />
        public override bool Execute()
        {
            string library = string.IsNullOrEmpty(Library) ? "libstdc++.so.6" : Library;
            string versions = string.IsNullOrEmpty(Versions) ? "GLIBCXX_3.4.32" : Versions;
            foreach (Microsoft.Build.Framework.ITaskItem item in Files)
            {
                string path = item.GetMetadata("FullPath");
                if (!File.Exists(path)) continue;
                foreach (string raw in versions.Split(';'))
                {
                    string version = raw.Trim();
                    if (version.Length == 0) continue;
                    try
                    {
                        ElfPatchOutcome outcome = ElfVersionNeeds.MarkWeak(path, library, version);
                        if (outcome == ElfPatchOutcome.Patched)
                            Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Normal,
                                "Discretax: marked the {0} need of {1} weak in {2}", version, library, path);
                    }
                    catch (InvalidDataException e)
                    {
                        Log.LogError("Discretax could not patch {0} for older Linux (set DiscretaxPatchLibTorchSharp=false to skip): {1}", path, e.Message);
                    }
                    catch (IOException e)
                    {
                        Log.LogError("Discretax could not write {0}: {1}", path, e.Message);
                    }
                }
            }
            return !Log.HasLoggedErrors;
        }
    }
#endif
}
