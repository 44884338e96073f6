using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace Discretax.Interop;

/// <summary>A Python dict of a pickle, in insertion order.</summary>
internal sealed class PyDict
{
    private readonly Dictionary<object, int> _index = new();

    public List<KeyValuePair<object?, object?>> Items { get; } = new();

    public void Set(object? key, object? value)
    {
        object k = key ?? DBNull.Value;
        if (_index.TryGetValue(k, out int i)) Items[i] = new(key, value);
        else
        {
            _index[k] = Items.Count;
            Items.Add(new(key, value));
        }
    }
}

/// <summary>A Python global (<c>module.name</c>) that a pickle refers to and the reader allowed.</summary>
internal sealed record PyGlobal(string Module, string Name)
{
    public override string ToString() => $"{Module}.{Name}";
}

/// <summary>A pickle that cannot be read: malformed, or needing what the reader does not allow.</summary>
internal sealed class PickleException(string message) : Exception(message);

/// <summary>
/// A minimal pickle virtual machine (protocols 0 to 5, the opcodes of data: numbers, strings, bytes, tuples, lists,
/// dicts, sets) that never imports or calls Python code: a global is resolved only through
/// <see cref="ResolveGlobal"/> (which refuses what it does not know), a call (<c>REDUCE</c>), an attribute update
/// (<c>BUILD</c>) and a persistent id only through the callbacks. So a malicious file can make it throw, not run code.
/// </summary>
internal sealed class PickleReader
{
    private static readonly object Mark = new();

    private readonly byte[] _data;
    private int _pos;
    private readonly List<object?> _stack = new();
    private readonly List<int> _marks = new();
    private readonly Dictionary<long, object?> _memo = new();

    /// <summary>Resolves <c>module.name</c> to an object the other callbacks understand, or throws.</summary>
    public required Func<string, string, object> ResolveGlobal { get; init; }

    /// <summary>Applies a callable (a resolved global) to its arguments (<c>REDUCE</c>, <c>NEWOBJ</c>).</summary>
    public required Func<object?, object?[], object?> Call { get; init; }

    /// <summary>Sets the state of an object (<c>BUILD</c>); returns the object that replaces it on the stack.</summary>
    public required Func<object?, object?, object?> Build { get; init; }

    /// <summary>Resolves a persistent id (<c>BINPERSID</c>, <c>PERSID</c>).</summary>
    public required Func<object?, object?> PersistentLoad { get; init; }

    public PickleReader(byte[] data) => _data = data;

    /// <summary>Runs the pickle to its <c>STOP</c> and returns the object it built.</summary>
    public object? Load()
    {
        while (true)
        {
            byte op = U8();
            switch (op)
            {
                case 0x80: U8(); break;                                   // PROTO
                case 0x95: Bytes(8); break;                               // FRAME (a length hint)
                case (byte)'.':                                           // STOP
                    if (_stack.Count != 1) throw new PickleException($"STOP with {_stack.Count} objects on the stack.");
                    return _stack[0];
                case (byte)'(': _marks.Add(_stack.Count); _stack.Add(Mark); break;
                case (byte)'0': Pop(); break;                             // POP
                case (byte)'1': PopMark(); break;                         // POP_MARK
                case (byte)'2': Push(Peek()); break;                      // DUP
                case (byte)'N': Push(null); break;
                case 0x88: Push(true); break;
                case 0x89: Push(false); break;
                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(Bytes(4))); break;
                case (byte)'K': Push((long)U8()); break;
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Bytes(2))); break;
                case 0x8a: Push(Long(Bytes(U8()))); break;                // LONG1
                case 0x8b: Push(Long(Bytes(Length(BinaryPrimitives.ReadInt32LittleEndian(Bytes(4)))))); break;
                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(Bytes(8))); break;
                case (byte)'I': Push(TextInt(Line())); break;             // INT (text; 00 and 01 are booleans)
                case (byte)'L': Push(TextLong(Line())); break;            // LONG (text)
                case (byte)'F': Push(double.Parse(Line(), System.Globalization.CultureInfo.InvariantCulture)); break;
                case (byte)'X': Push(Utf8(Bytes(Length(BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4)))))); break;
                case 0x8c: Push(Utf8(Bytes(U8()))); break;                // SHORT_BINUNICODE
                case 0x8d: Push(Utf8(Bytes(Length(BinaryPrimitives.ReadUInt64LittleEndian(Bytes(8)))))); break;
                case (byte)'T': Push(Latin1(Bytes(Length(BinaryPrimitives.ReadInt32LittleEndian(Bytes(4)))))); break;
                case (byte)'U': Push(Latin1(Bytes(U8()))); break;         // SHORT_BINSTRING
                case (byte)'B': Push(Bytes(Length(BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4)))).ToArray()); break;
                case (byte)'C': Push(Bytes(U8()).ToArray()); break;       // SHORT_BINBYTES
                case 0x8e: Push(Bytes(Length(BinaryPrimitives.ReadUInt64LittleEndian(Bytes(8)))).ToArray()); break;
                case 0x96: Push(Bytes(Length(BinaryPrimitives.ReadUInt64LittleEndian(Bytes(8)))).ToArray()); break;
                case (byte)')': Push(Array.Empty<object?>()); break;
                case (byte)'t': Push(PopMark().ToArray()); break;         // TUPLE
                case 0x85: Push(new[] { Pop() }); break;                  // TUPLE1
                case 0x86: { var b = Pop(); var a = Pop(); Push(new[] { a, b }); break; }
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); Push(new[] { a, b, c }); break; }
                case (byte)']': Push(new List<object?>()); break;
                case (byte)'l': Push(PopMark()); break;                   // LIST
                case (byte)'a': { var v = Pop(); AsList(Peek()).Add(v); break; }
                case (byte)'e': { var items = PopMark(); AsList(Peek()).AddRange(items); break; }
                case (byte)'}': Push(new PyDict()); break;
                case (byte)'d': { var items = PopMark(); var d = new PyDict(); SetItems(d, items); Push(d); break; }
                case (byte)'s': { var v = Pop(); var k = Pop(); AsDict(Peek()).Set(Key(k), v); break; }
                case (byte)'u': { var items = PopMark(); SetItems(AsDict(Peek()), items); break; }
                case 0x8f: Push(new List<object?>()); break;              // EMPTY_SET (as a list)
                case 0x90: { var items = PopMark(); AsList(Peek()).AddRange(items); break; }   // ADDITEMS
                case 0x91: Push(PopMark()); break;                        // FROZENSET (as a list)
                case (byte)'c':                                           // GLOBAL
                {
                    string module = Line(), name = Line();
                    Push(ResolveGlobal(module, name));
                    break;
                }
                case 0x93:                                                // STACK_GLOBAL
                {
                    var name = Pop() as string ?? throw new PickleException("STACK_GLOBAL without a name string.");
                    var module = Pop() as string ?? throw new PickleException("STACK_GLOBAL without a module string.");
                    Push(ResolveGlobal(module, name));
                    break;
                }
                case (byte)'R':                                           // REDUCE
                {
                    var args = Pop() as object?[] ?? throw new PickleException("REDUCE without an argument tuple.");
                    var callable = Pop();
                    Push(Call(callable, args));
                    break;
                }
                case 0x81:                                                // NEWOBJ
                {
                    var args = Pop() as object?[] ?? throw new PickleException("NEWOBJ without an argument tuple.");
                    var cls = Pop();
                    Push(Call(cls, args));
                    break;
                }
                case (byte)'b': { var state = Pop(); var obj = Pop(); Push(Build(obj, state)); break; }   // BUILD
                case (byte)'Q': Push(PersistentLoad(Pop())); break;       // BINPERSID
                case (byte)'P': Push(PersistentLoad(Line())); break;      // PERSID
                case (byte)'q': _memo[U8()] = Peek(); break;              // BINPUT
                case (byte)'r': _memo[BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4))] = Peek(); break;
                case (byte)'p': _memo[long.Parse(Line(), System.Globalization.CultureInfo.InvariantCulture)] = Peek(); break;
                case 0x94: _memo[_memo.Count] = Peek(); break;            // MEMOIZE
                case (byte)'h': Push(Memo(U8())); break;                  // BINGET
                case (byte)'j': Push(Memo(BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4)))); break;
                case (byte)'g': Push(Memo(long.Parse(Line(), System.Globalization.CultureInfo.InvariantCulture))); break;
                default:
                    throw new PickleException($"Opcode 0x{op:x2} at byte {_pos - 1} is not one of data (objects, extensions and out-of-band buffers are not read).");
            }
        }
    }

    private byte U8() => _pos < _data.Length ? _data[_pos++] : throw new PickleException("The pickle ends before its STOP.");

    private ReadOnlySpan<byte> Bytes(int n)
    {
        if (n < 0 || n > _data.Length - _pos) throw new PickleException($"The pickle ends inside a {n}-byte value at byte {_pos}.");
        var s = new ReadOnlySpan<byte>(_data, _pos, n);
        _pos += n;
        return s;
    }

    private int Length(long n) =>
        n >= 0 && n <= _data.Length - _pos ? (int)n : throw new PickleException($"A length of {n} bytes at byte {_pos} runs past the end of the pickle.");

    private int Length(ulong n) => n <= (ulong)(_data.Length - _pos) ? (int)n : Length(-1L);

    private string Line()
    {
        int start = _pos;
        while (_pos < _data.Length && _data[_pos] != (byte)'\n') _pos++;
        if (_pos == _data.Length) throw new PickleException("The pickle ends inside a text line.");
        string s = Encoding.UTF8.GetString(_data, start, _pos - start);
        _pos++;
        return s.EndsWith('\r') ? s[..^1] : s;
    }

    private static string Utf8(ReadOnlySpan<byte> b) => Encoding.UTF8.GetString(b);
    private static string Latin1(ReadOnlySpan<byte> b) => Encoding.Latin1.GetString(b);

    private static object Long(ReadOnlySpan<byte> b)
    {
        if (b.Length == 0) return 0L;
        var big = new BigInteger(b, isUnsigned: false, isBigEndian: false);
        return big >= long.MinValue && big <= long.MaxValue ? (long)big : big;
    }

    private static object TextInt(string s) => s switch
    {
        "00" => false,
        "01" => true,
        _ => long.Parse(s, System.Globalization.CultureInfo.InvariantCulture),
    };

    private static object TextLong(string s)
    {
        var big = BigInteger.Parse(s.TrimEnd('L'), System.Globalization.CultureInfo.InvariantCulture);
        return big >= long.MinValue && big <= long.MaxValue ? (long)big : big;
    }

    private void Push(object? o) => _stack.Add(o);

    private object? Pop()
    {
        if (_stack.Count == 0 || ReferenceEquals(_stack[^1], Mark)) throw new PickleException("Pop from an empty stack.");
        var o = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        return o;
    }

    private object? Peek() =>
        _stack.Count > 0 && !ReferenceEquals(_stack[^1], Mark) ? _stack[^1] : throw new PickleException("The stack is empty where a value is needed.");

    private List<object?> PopMark()
    {
        if (_marks.Count == 0) throw new PickleException("No MARK to pop to.");
        int m = _marks[^1];
        _marks.RemoveAt(_marks.Count - 1);
        var items = _stack.GetRange(m + 1, _stack.Count - m - 1);
        _stack.RemoveRange(m, _stack.Count - m);
        return items;
    }

    private object? Memo(long key) =>
        _memo.TryGetValue(key, out var o) ? o : throw new PickleException($"Memo key {key} was never stored.");

    private static List<object?> AsList(object? o) => o as List<object?> ?? throw new PickleException($"Append to a {TypeName(o)}, not a list.");

    private static PyDict AsDict(object? o) => o as PyDict ?? throw new PickleException($"Set an item of a {TypeName(o)}, not a dict.");

    private static object? Key(object? k) => k is object?[] tuple ? string.Join(",", tuple) : k;

    private static void SetItems(PyDict d, List<object?> items)
    {
        if (items.Count % 2 != 0) throw new PickleException("SETITEMS with an odd number of values.");
        for (int i = 0; i < items.Count; i += 2) d.Set(Key(items[i]), items[i + 1]);
    }

    internal static string TypeName(object? o) => o switch
    {
        null => "None",
        PyGlobal g => g.ToString(),
        _ => o.GetType().Name,
    };
}
