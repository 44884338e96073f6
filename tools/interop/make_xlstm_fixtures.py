#!/usr/bin/python3
"""Writes the xLSTM parity fixtures of the Discretax tests by running NX-AI's own PyTorch code.

Run from the repository root with Debian's PyTorch (the tests only read the committed outputs; CI never runs this):

    /usr/bin/python3 tools/interop/make_xlstm_fixtures.py [XLSTM_REPO [MLSTM_KERNELS_REPO]]

The two arguments are git directories of https://github.com/NX-AI/xlstm and https://github.com/NX-AI/mlstm_kernels
(default: the snapshots under /work/.mirror/). The script copies the reference files it needs out of them (`git show
HEAD:<path>`) into a temporary folder and imports them from there, unchanged, so the numbers below come from the
references' own code. Recorded in the output: the commit of each snapshot (source.json).

What is swapped or stubbed (PyTorch 1.13 on a CPU: no Triton, no einops, no omegaconf, no transformers):

  * mlstm_kernels' Triton kernels are not imported. The kernel registries `mlstm_kernels/torch/chunkwise/__init__.py`,
    `.../parallel/__init__.py` and `.../recurrent/__init__.py` are replaced by registries that hold only the
    references' own native torch kernels: chunkwise `native_autograd` / `native_custbw`
    (`chunkwise/native/fw.py`, `bw.py`, `fwbw.py`), the sequence kernel `native_sequence__native`
    (`recurrent/native_sequence.py`) and the step kernel `native` (`recurrent/native_step.py`). The model runs with
    chunkwise_kernel="chunkwise--native_autograd", sequence_kernel="native_sequence__native", step_kernel="native",
    mode="inference" (mlstm_kernels' `wrap_chunkwise__arbitrary_sequence_length`: whole chunks chunkwise, the rest
    step by step). `recurrent/native_sequence.py` imports the Triton step modules at the top: they are replaced by
    stubs that raise if called (they are not).
  * `triton`: a stub package whose `triton.language` has the three dtype names `mlstm_kernels/torch/utils.py` reads
    at import time; nothing calls Triton.
  * `einops.rearrange`: a stub for the pure reshapes the native chunkwise kernel writes with it (split or merge of
    adjacent axes, no permutation; anything else raises).
  * `torch.amp.custom_fwd` / `custom_bwd` (PyTorch >= 2.4) are added as pass-through decorators (they only cast under
    CUDA autocast, which is never active here), and `torch.no_grad` is given PyTorch 2's bare-decorator form
    (`@torch.no_grad` on `generate_tokens`), otherwise the same context manager.
  * `xlstm/__init__.py` is replaced by an empty file (the real one imports the sLSTM CUDA extension); the layer and
    the model are imported from their own modules (`xlstm.blocks.mlstm.layer`, `xlstm.xlstm_large.model`).

Outputs, under tests/Discretax.Tests/Fixtures/interop/xlstm/ (every value from torch.manual_seed; float32):

    mlstm_layer/      NX-AI xlstm's PyTorch mLSTMLayer (xlstm/blocks/mlstm/layer.py), E = 16, 4 heads, bias = True:
                      config.json (the mLSTMLayerConfig fields), state_dict.pt (torch.save of layer.state_dict(): the
                      reference's names, outnorm stored as weight - 1), io.safetensors (x [2, 11, 16], y = layer(x))
    xlstm_large/      the xLSTM-7B architecture (xlstm/xlstm_large/model.py, xLSTMLarge) at a tiny size, weight_mode
                      "single": config.json (the xLSTMLargeConfig fields), model.safetensors (xLSTMLarge.state_dict()),
                      io.safetensors (input_ids [2, 21], logits [2, 21, 64] = model(input_ids), prompt [2, 5],
                      generated [2, 6] = model.generate(prompt, 6, "greedy"))
    xlstm_large_fused/ the same architecture, 1 block, weight_mode "fused": weights converted from a "single" model by
                      the reference's convert_single_weights_to_fused_weights, stored as bfloat16 (the float32 model
                      computes with those bfloat16 values): config.json, model.safetensors, io.safetensors
                      (input_ids [2, 9], logits)
"""
import dataclasses
import importlib
import json
import os
import subprocess
import sys
import tempfile
import types

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_fixtures import read_safetensors, write_json, write_safetensors  # noqa: E402

ROOT = os.path.join(HERE, "..", "..")
OUT = os.path.join(ROOT, "tests", "Discretax.Tests", "Fixtures", "interop", "xlstm")
XLSTM = sys.argv[1] if len(sys.argv) > 1 else "/work/.mirror/NX-AI+xlstm/repo"
KERNELS = sys.argv[2] if len(sys.argv) > 2 else "/work/.mirror/NX-AI+mlstm_kernels/repo"

XLSTM_FILES = [
    "xlstm/utils.py",
    "xlstm/components/__init__.py",
    "xlstm/components/conv.py",
    "xlstm/components/init.py",
    "xlstm/components/linear_headwise.py",
    "xlstm/components/ln.py",
    "xlstm/blocks/__init__.py",
    "xlstm/blocks/mlstm/__init__.py",
    "xlstm/blocks/mlstm/backends.py",
    "xlstm/blocks/mlstm/cell.py",
    "xlstm/blocks/mlstm/layer.py",
    "xlstm/xlstm_large/__init__.py",
    "xlstm/xlstm_large/components.py",
    "xlstm/xlstm_large/generate.py",
    "xlstm/xlstm_large/model.py",
    "xlstm/xlstm_large/utils.py",
]
KERNEL_FILES = [
    "mlstm_kernels/__init__.py",
    "mlstm_kernels/torch/__init__.py",
    "mlstm_kernels/torch/backend_module.py",
    "mlstm_kernels/torch/kernel_wrappers.py",
    "mlstm_kernels/torch/utils.py",
    "mlstm_kernels/torch/chunkwise/native/__init__.py",
    "mlstm_kernels/torch/chunkwise/native/bw.py",
    "mlstm_kernels/torch/chunkwise/native/fw.py",
    "mlstm_kernels/torch/chunkwise/native/fwbw.py",
    "mlstm_kernels/torch/recurrent/native_sequence.py",
    "mlstm_kernels/torch/recurrent/native_step.py",
]

# The replaced files (see the header): registries of the native kernels only, stubs of the Triton modules.
REPLACED = {
    "xlstm/__init__.py": "",
    "mlstm_kernels/torch/chunkwise/__init__.py":
        "from .native import mlstm_chunkwise__native_autograd, mlstm_chunkwise__native_custbw\n"
        "registry = {'native_autograd': mlstm_chunkwise__native_autograd,\n"
        "            'native_custbw': mlstm_chunkwise__native_custbw}\n",
    "mlstm_kernels/torch/parallel/__init__.py": "registry = {}\n",
    "mlstm_kernels/torch/recurrent/__init__.py":
        "from .native_sequence import mlstm_recurrent_sequence__native_fw\n"
        "from .native_step import mlstm_recurrent_step__native\n"
        "registry_step = {'native': mlstm_recurrent_step__native}\n"
        "registry_sequence = {'native_sequence__native': mlstm_recurrent_sequence__native_fw}\n",
    "mlstm_kernels/torch/recurrent/triton_step.py":
        "def mlstm_recurrent_step__triton_fw(*args, **kwargs):\n    raise NotImplementedError('Triton stub')\n",
    "mlstm_kernels/torch/recurrent/triton_step_alternate.py":
        "def mlstm_recurrent_step__triton_alternate_fw(*args, **kwargs):\n    raise NotImplementedError('Triton stub')\n",
}


def git_show(repo, path):
    return subprocess.run(["git", "-C", repo, "show", f"HEAD:{path}"], check=True, capture_output=True).stdout


def git_commit(repo):
    return subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()


def extract(target):
    for repo, files in ((XLSTM, XLSTM_FILES), (KERNELS, KERNEL_FILES)):
        for path in files:
            dst = os.path.join(target, path)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(dst, "wb") as f:
                f.write(git_show(repo, path))
    for path, text in REPLACED.items():
        dst = os.path.join(target, path)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "w") as f:
            f.write(text)


def rearrange(x, pattern, **sizes):
    """einops.rearrange for reshapes only: axes split or merged in place, never permuted."""
    left, right = (side.split() for side in pattern.split("->"))

    def groups(tokens):
        out, cur = [], None
        for t in tokens:
            if t.startswith("("):
                cur = [t[1:]]
                if t.endswith(")"):
                    cur[-1] = cur[-1][:-1]
                    out.append(cur)
                    cur = None
            elif t.endswith(")"):
                cur.append(t[:-1])
                out.append(cur)
                cur = None
            elif cur is not None:
                cur.append(t)
            else:
                out.append([t])
        return out

    lg, rg = groups(left), groups(right)
    flat_l = [a for g in lg for a in g if a != "1"]
    flat_r = [a for g in rg for a in g if a != "1"]
    if flat_l != flat_r:
        raise NotImplementedError(f"einops stub: only reshapes without permutation ({pattern})")
    known = dict(sizes)
    assert len(lg) == x.dim(), pattern
    for g, n in zip(lg, x.shape):
        names = [a for a in g if a != "1"]
        unknown = [a for a in names if a not in known]
        prod = 1
        for a in names:
            if a in known:
                prod *= known[a]
        if len(unknown) == 1:
            known[unknown[0]] = n // prod
        elif not unknown:
            assert prod == n or (not names and n == 1), pattern
        else:
            raise NotImplementedError(f"einops stub: {pattern}")
    shape = []
    for g in rg:
        prod = 1
        for a in g:
            prod *= 1 if a == "1" else known[a]
        shape.append(prod)
    return x.reshape(shape)


def install_stubs():
    einops = types.ModuleType("einops")
    einops.rearrange = rearrange
    sys.modules["einops"] = einops
    triton = types.ModuleType("triton")
    language = types.ModuleType("triton.language")
    language.float32, language.float16, language.bfloat16 = "fp32", "fp16", "bf16"
    triton.language = language
    sys.modules["triton"] = triton
    sys.modules["triton.language"] = language

    def passthrough(*args, **kwargs):
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return args[0]
        return lambda f: f

    torch.amp.custom_fwd = passthrough
    torch.amp.custom_bwd = passthrough
    original = torch.no_grad

    class no_grad(original):
        def __new__(cls, func=None):
            if func is None:
                return super().__new__(cls)
            return original()(func)

        def __init__(self, func=None):
            super().__init__()

    torch.no_grad = no_grad


def randomize_(params, scales, generator):
    """Overwrites every parameter (name -> (mean, std)), so that each one matters for the output."""
    with torch.no_grad():
        for name, p in params:
            mean, std = next(v for k, v in scales if k in name)
            p.copy_(mean + std * torch.randn(p.shape, generator=generator))


def layer_fixture(target):
    layer_mod = importlib.import_module("xlstm.blocks.mlstm.layer")
    cfg = layer_mod.mLSTMLayerConfig(embedding_dim=16, num_heads=4, proj_factor=2.0, conv1d_kernel_size=4,
                                     qkv_proj_blocksize=4, bias=True, dropout=0.0, context_length=11)
    torch.manual_seed(1405)
    layer = layer_mod.mLSTMLayer(cfg).eval()
    g = torch.Generator().manual_seed(1406)
    # v_proj small: the cell's outputs then have a per-head variance of about 1e-3, where outnorm's eps (1e-5 here,
    # 1e-6 in xlstm-jax) changes the result by about 1e-3 relative (visible at the tests' 1e-5).
    randomize_(layer.named_parameters(), [
        ("proj_up", (0.0, 0.3)), ("q_proj", (0.0, 0.5)), ("k_proj", (0.0, 0.5)), ("v_proj", (0.0, 0.05)),
        ("conv1d", (0.0, 0.4)), ("igate.weight", (0.0, 0.05)), ("igate.bias", (-1.0, 1.0)),
        ("fgate.weight", (0.0, 0.05)), ("fgate.bias", (2.0, 1.0)), ("outnorm", (0.0, 0.3)),
        ("learnable_skip", (1.0, 0.3)), ("proj_down", (0.0, 0.3)),
    ], g)
    x = torch.randn(2, 11, 16, generator=g)
    with torch.no_grad():
        y = layer(x)
    d = os.path.join(target, "mlstm_layer")
    os.makedirs(d, exist_ok=True)
    config = {k: v for k, v in dataclasses.asdict(cfg).items() if not k.startswith("_") or k == "_num_blocks"}
    config["_inner_embedding_dim"] = cfg._inner_embedding_dim
    write_json(os.path.join(d, "config.json"), config)
    torch.save(layer.state_dict(), os.path.join(d, "state_dict.pt"))
    write_safetensors(os.path.join(d, "io.safetensors"), {"x": x, "y": y}, {"format": "pt"})
    return layer, x, y


LARGE_SCALES = [
    ("embedding", (0.0, 1.0)), ("norm", (1.0, 0.2)), (".q.", (0.0, 0.3)), (".k.", (0.0, 0.3)), (".v.", (0.0, 0.3)),
    ("ogate_preact", (0.0, 0.3)), ("qkv_opreact", (0.0, 0.3)),
    # Gate pre-activations of up to about 20: the soft cap 15 matters.
    ("igate_preact.weight", (0.0, 1.5)), ("igate_preact.bias", (0.0, 2.0)),
    ("fgate_preact.weight", (0.0, 1.0)), ("fgate_preact.bias", (3.0, 2.0)),
    ("out_proj", (0.0, 0.2)), ("proj_up", (0.0, 0.3)), ("proj_down", (0.0, 0.2)),
    # Logits of up to about 60 before the output soft cap 30.
    ("lm_head", (0.0, 3.0)),
]


def large_config(model_mod, **kw):
    base = dict(embedding_dim=32, num_heads=2, num_blocks=2, vocab_size=64, use_bias=False, norm_eps=1e-6,
                qk_dim_factor=0.5, v_dim_factor=1.0, chunkwise_kernel="chunkwise--native_autograd",
                sequence_kernel="native_sequence__native", step_kernel="native", mode="inference", chunk_size=16,
                return_last_states=True, autocast_kernel_dtype="float32", eps=1e-6, inference_state_dtype="float32",
                ffn_proj_factor=2.6667, ffn_round_up_to_multiple_of=16, gate_soft_cap=15.0,
                output_logit_soft_cap=30.0, weight_mode="single")
    base.update(kw)
    return model_mod.xLSTMLargeConfig(**base)


def write_large(d, cfg, state_dict, io):
    os.makedirs(d, exist_ok=True)
    config = dataclasses.asdict(cfg)
    config["model_type"] = "xlstm"
    write_json(os.path.join(d, "config.json"), config)
    write_safetensors(os.path.join(d, "model.safetensors"), dict(state_dict), {"format": "pt"})
    write_safetensors(os.path.join(d, "io.safetensors"), io, {"format": "pt"})


def large_fixture(target):
    model_mod = importlib.import_module("xlstm.xlstm_large.model")
    utils_mod = importlib.import_module("xlstm.xlstm_large.utils")

    cfg = large_config(model_mod)
    torch.manual_seed(1407)
    model = model_mod.xLSTMLarge(cfg).eval()
    g = torch.Generator().manual_seed(1408)
    randomize_(model.named_parameters(), LARGE_SCALES, g)
    ids = torch.randint(0, cfg.vocab_size, (2, 21), generator=g)
    prompt = torch.randint(0, cfg.vocab_size, (2, 5), generator=g)
    with torch.no_grad():
        logits, _ = model(ids)
        generated, _ = model.generate(prompt, max_length=6, sampling_type="greedy")
    write_large(os.path.join(target, "xlstm_large"), cfg, model.state_dict(),
                {"input_ids": ids, "logits": logits, "prompt": prompt, "generated": generated})

    # Fused: a one-block single-weight model, its weights rounded to bfloat16, converted by the reference's utility.
    single_cfg = large_config(model_mod, num_blocks=1)
    torch.manual_seed(1409)
    single = model_mod.xLSTMLarge(single_cfg).eval()
    g = torch.Generator().manual_seed(1410)
    randomize_(single.named_parameters(), LARGE_SCALES, g)
    with torch.no_grad():
        for p in single.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    fused_cfg = large_config(model_mod, num_blocks=1, weight_mode="fused")
    fused = model_mod.xLSTMLarge(fused_cfg).eval()
    fused.load_state_dict(utils_mod.convert_single_weights_to_fused_weights(dict(single.state_dict())))
    ids = torch.randint(0, fused_cfg.vocab_size, (2, 9), generator=g)
    with torch.no_grad():
        logits, _ = fused(ids)
        single_logits, _ = single(ids)
    assert torch.allclose(logits, single_logits, rtol=1e-5, atol=1e-5)
    write_large(os.path.join(target, "xlstm_large_fused"), fused_cfg,
                {k: v.to(torch.bfloat16) for k, v in fused.state_dict().items()},
                {"input_ids": ids, "logits": logits})
    return model


def main():
    install_stubs()
    with tempfile.TemporaryDirectory() as tmp:
        extract(tmp)
        sys.path.insert(0, tmp)
        os.makedirs(OUT, exist_ok=True)
        layer, x, y = layer_fixture(OUT)
        large_fixture(OUT)
    write_json(os.path.join(OUT, "source.json"), {
        "script": "tools/interop/make_xlstm_fixtures.py",
        "torch": torch.__version__,
        "NX-AI/xlstm": git_commit(XLSTM),
        "NX-AI/mlstm_kernels": git_commit(KERNELS),
    })
    io, _ = read_safetensors(os.path.join(OUT, "mlstm_layer", "io.safetensors"))
    assert torch.equal(io["y"], y)
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(OUT) for f in fs)
    print(f"PyTorch {torch.__version__}: wrote {OUT} ({total} bytes)")
    for r, _, fs in sorted(os.walk(OUT)):
        for f in sorted(fs):
            print(f"  {os.path.relpath(os.path.join(r, f), OUT)}: {os.path.getsize(os.path.join(r, f))}")


if __name__ == "__main__":
    main()
