#!/usr/bin/python3
"""Writes the checkpoint fixtures of the Discretax.Interop tests with real PyTorch.

Run from the repository root with Debian's PyTorch (the tests only read the committed outputs; CI never runs this):

    /usr/bin/python3 tools/interop/make_fixtures.py

Output, under tests/Discretax.Tests/Fixtures/interop/ (every value is fixed: formulas, or torch.manual_seed):

    tensors.pt          torch.save of an OrderedDict: every dtype, a transposed tensor, views sharing one storage
                        with a storage offset, a 0-d tensor (zip format, the default since PyTorch 1.6)
    tensors.safetensors the same names and values as contiguous tensors, plus every safetensors dtype, with
                        __metadata__ {"format": "pt", ...}
    legacy.pt           torch.save(..., _use_new_zipfile_serialization=False): the pre-1.6 format, to be refused
    nested.pt           a training checkpoint: {"model": state dict, "epoch": 3, "name": str, "history": [t, t],
                        "best": None}, to be flattened to dotted names
    module.pt           torch.save of a whole nn.Module (not its state dict), to be refused
    tiny/               a torch.nn module Linear(4, 6) -> LayerNorm(6) as a Hugging Face directory:
                        config.json, model.safetensors, pytorch_model.bin, io.safetensors (input and output)
    tiny_sharded/       the same weights as model.safetensors.index.json + two shards + config.json
    tiny_bin/           the same weights as pytorch_model.bin + config.json

The python `safetensors` package is not installed here (Debian has no package of it), so the .safetensors files are
written by `write_safetensors` below, by hand from the format: an 8-byte little-endian header length, a JSON header
(padded with spaces to a multiple of 8 bytes, as the reference writer pads it), then the raw little-endian bytes,
tensors ordered by alignment then name (the reference writer's order).
"""
import collections
import json
import os
import struct
import sys

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "Discretax.Tests", "Fixtures", "interop")

SAFETENSORS_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


def tensor_bytes(t):
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: the same two bytes as int16
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def write_safetensors(path, tensors, metadata=None):
    """The safetensors format, written by hand (no `safetensors` package here)."""
    assert sys.byteorder == "little"
    items = sorted(tensors.items(), key=lambda kv: (-kv[1].element_size(), kv[0]))
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    blobs, offset = [], 0
    for name, t in items:
        data = tensor_bytes(t)
        header[name] = {"dtype": SAFETENSORS_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """The reader for the check below and for checking files written by Discretax (same format, by hand)."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", None)
    inv = {v: k for k, v in SAFETENSORS_DTYPES.items()}
    out = {}
    for name, e in header.items():
        b, c = e["data_offsets"]
        dtype = inv[e["dtype"]]
        buf = bytearray(raw[8 + n + b:8 + n + c])
        load = torch.int16 if dtype == torch.bfloat16 else dtype
        t = torch.frombuffer(buf, dtype=load) if len(buf) else torch.empty(0, dtype=load)
        if dtype == torch.bfloat16:
            t = t.view(torch.bfloat16)
        out[name] = t.reshape(e["shape"]).clone()
    return out, meta


def mixed_tensors():
    """Formula values, exact in their dtype, that the C# tests write down again."""
    base = torch.arange(10, dtype=torch.float32)
    d = collections.OrderedDict()
    d["f32"] = torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.25 - 0.5
    d["f64"] = torch.arange(4, dtype=torch.float64) / 3
    d["f16"] = ((torch.arange(6, dtype=torch.float32).reshape(3, 2) - 2.5) * 0.125).to(torch.float16)
    d["bf16"] = (torch.arange(5, dtype=torch.float32) * -1.5 + 2).to(torch.bfloat16)
    d["i64"] = torch.tensor([-3, 0, 2 ** 40 + 1], dtype=torch.int64)
    d["i32"] = torch.tensor([[-7, 8], [2 ** 30, -(2 ** 31)]], dtype=torch.int32)
    d["u8"] = torch.tensor([0, 1, 255], dtype=torch.uint8)
    d["bool"] = torch.tensor([True, False, True], dtype=torch.bool)
    d["transposed"] = torch.arange(12, dtype=torch.float32).reshape(3, 4).t()  # [4, 3], strides (1, 4)
    d["view"] = base[3:7]                                                    # storage offset 3, storage of 10
    d["strided"] = base[::2]                                                 # the same storage, stride 2
    d["scalar"] = torch.tensor(7.5, dtype=torch.float32)
    assert not d["transposed"].is_contiguous()
    return d


def all_dtypes():
    """One small tensor of each safetensors dtype for tensors.safetensors (the ones mixed_tensors lacks)."""
    return {
        "i16": torch.tensor([-32768, 0, 32767], dtype=torch.int16),
        "i8": torch.tensor([-128, 5, 127], dtype=torch.int8),
    }


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(4, 6)
        self.norm = torch.nn.LayerNorm(6)

    def forward(self, x):
        return self.norm(self.proj(x))


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def main():
    os.makedirs(OUT, exist_ok=True)

    mixed = mixed_tensors()
    torch.save(mixed, os.path.join(OUT, "tensors.pt"))
    torch.save(collections.OrderedDict(f32=mixed["f32"]), os.path.join(OUT, "legacy.pt"),
               _use_new_zipfile_serialization=False)
    torch.save({"model": collections.OrderedDict(w=torch.tensor([1.0, -1.0]), b=torch.tensor([0.5])),
                "epoch": 3, "name": "run-1", "history": [torch.tensor([1, 2]), torch.tensor([3])], "best": None},
               os.path.join(OUT, "nested.pt"))
    st = {k: v.contiguous() for k, v in mixed.items()}
    st.update(all_dtypes())
    write_safetensors(os.path.join(OUT, "tensors.safetensors"), st,
                      {"format": "pt", "source": "tools/interop/make_fixtures.py"})

    torch.manual_seed(20240607)
    tiny = Tiny()
    with torch.no_grad():  # not the default ones and zeros, so that loading the norm matters
        tiny.norm.weight.copy_(1 + 0.5 * torch.randn(6))
        tiny.norm.bias.copy_(0.5 * torch.randn(6))
    x = torch.randn(2, 3, 4)
    with torch.no_grad():
        y = tiny(x)
    sd = tiny.state_dict()
    torch.save(tiny, os.path.join(OUT, "module.pt"))
    config = {"model_type": "discretax-interop-tiny", "in_features": 4, "hidden_size": 6,
              "layer_norm_eps": 1e-5, "torch_dtype": "float32"}

    d = os.path.join(OUT, "tiny")
    os.makedirs(d, exist_ok=True)
    write_json(os.path.join(d, "config.json"), config)
    write_safetensors(os.path.join(d, "model.safetensors"), dict(sd), {"format": "pt"})
    torch.save(sd, os.path.join(d, "pytorch_model.bin"))
    write_safetensors(os.path.join(d, "io.safetensors"), {"input": x, "output": y})

    d = os.path.join(OUT, "tiny_sharded")
    os.makedirs(d, exist_ok=True)
    write_json(os.path.join(d, "config.json"), config)
    shards = {"model-00001-of-00002.safetensors": ["proj.weight", "proj.bias"],
              "model-00002-of-00002.safetensors": ["norm.weight", "norm.bias"]}
    weight_map, total = {}, 0
    for shard, names in shards.items():
        write_safetensors(os.path.join(d, shard), {n: sd[n] for n in names}, {"format": "pt"})
        for n in names:
            weight_map[n] = shard
            total += sd[n].numel() * sd[n].element_size()
    write_json(os.path.join(d, "model.safetensors.index.json"),
               {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))})

    d = os.path.join(OUT, "tiny_bin")
    os.makedirs(d, exist_ok=True)
    write_json(os.path.join(d, "config.json"), config)
    torch.save(sd, os.path.join(d, "pytorch_model.bin"))

    # Self-check: the hand-written safetensors read back equal, the .pt files load back equal.
    back, meta = read_safetensors(os.path.join(OUT, "tensors.safetensors"))
    assert meta["format"] == "pt"
    for k, v in st.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k
    for k, v in torch.load(os.path.join(OUT, "tensors.pt")).items():
        assert torch.equal(v, mixed[k]), k
    io, _ = read_safetensors(os.path.join(OUT, "tiny", "io.safetensors"))
    assert torch.equal(io["output"], y)

    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(OUT) for f in fs)
    print(f"PyTorch {torch.__version__}: wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
