#!/usr/bin/python3
"""Writes the Mamba2 parity fixtures of the Discretax tests with fla's own Mamba2ForCausalLM code.

A sibling of make_fla_fixtures.py (it reuses that script's extraction, its torch stand-ins for fla's norms and its
stubs of transformers); run it from the repository root with Debian's PyTorch (1.13; no triton, einops, transformers
or mamba_ssm needed); the tests only read the committed outputs, CI never runs this:

    /usr/bin/python3 tools/interop/make_fla_mamba2_fixtures.py [path to a flash-linear-attention git checkout]

The checkout defaults to /work/.mirror/fla-org+flash-linear-attention/repo (or $FLA_REPO). fla's files at HEAD are
extracted with `git show` into a temporary folder and imported from there, unchanged:

    fla/layers/mamba2.py (the layer; without mamba_ssm it runs its own pure-PyTorch `torch_forward`),
    fla/layers/utils.py (get_layer_cache / update_layer_cache),
    fla/models/mamba2/{configuration,modeling}_mamba2.py, fla/modules/l2warp.py

Swapped (Triton-only code replaced by torch code written to fla's definitions; everything else is fla's):

    fla.modules.RMSNorm              -> x * rsqrt(mean(x^2, -1) + eps) * weight (fla's rms_norm_ref; the stand-in of
                                        make_fla_fixtures.py): the blocks' `norm` and the final `norm_f`
    fla.modules.layernorm_gated.RMSNormGated
                                     -> fla's rms_norm_ref with a gate: norm_before_gate=False:
                                        rms_g(x * silu(z)) * weight; True: rms_g(x) * weight * silu(z), rms_g over groups
                                        of group_size = d_inner / n_groups features
    fla.modules.activations.ACT2FN   -> {'silu', 'swish'}: torch's SiLU (fla's swish kernel computes x * sigmoid(x))
    fla.modules.FusedCrossEntropyLoss -> nn.CrossEntropyLoss
    fla.modules.convolution.causal_conv1d / causal_conv1d_update
                                     -> stubs that fail if called: torch_forward convolves with the layer's own
                                        nn.Conv1d (prefill) or its window sum (decode), never with these
Stubbed (imports only): einops.rearrange (the patterns used), transformers' PretrainedConfig / PreTrainedModel
(post_init runs fla's _init_weights on every module and ties lm_head to the embedding when tie_word_embeddings) /
outputs / logging (with warning_once) / deprecate_kwarg / GradientCheckpointingLayer, fla.models.utils (Cache: a list
of per-layer dicts {'conv_state', 'recurrent_state'} with fla's update(layer_idx, ...) signature; FLAGenerationMixin),
the mask helpers of fla/layers/utils.py, torch.distributed's DTensor / DeviceMesh / placement types (PyTorch 1.13 lacks
them; fla's _init_weights only tests isinstance against DTensor).

Output, under tests/Discretax.Tests/Fixtures/interop/fla/ (fixed seeds; float32 unless said):

    mamba2/         Mamba2ForCausalLM (hidden 32, 2 layers, vocab 64, state_size 16, head_dim 16 -> 4 heads, n_groups 1,
                    chunk_size 8 so that fla's chunked torch_forward crosses chunks, initializer_range 0.25), fla's other
                    defaults (dt_limit (0, inf), written by json as [0.0, Infinity]): config.json, model.safetensors,
                    io.safetensors (input_ids [2, 12] int64, logits [2, 12, 64] from fla's prefill path torch_forward,
                    loss: fla's next-token loss with labels = input_ids). The script checks that fla's decode path fed
                    one token at a time gives the same logits.
    mamba2_groups/  Mamba2ForCausalLM (hidden 32, 2 layers, n_groups 2 -> 2 heads per group, D_has_hdim, norm_before_gate,
                    use_bias, no conv bias, dt_limit (0, 0.5), residual_in_fp32 false, conv_init 0.5, tied embeddings),
                    weights stored as a bfloat16 fla model stores them (bfloat16, but A_log and the RMSNorm weights
                    `layers.{i}.norm` and `norm_f`, which fla creates in float32, in float32); logits computed in float32
                    from exactly those values by fla's decode path, one token at a time from a zero cache (head h reads
                    group h // (NH / G), as mamba_ssm's kernels, which fla's CUDA path calls); io.safetensors also holds
                    `logits_prefill`, fla's torch_forward logits, whose repeat of B and C gives head h group h % G.

Every norm gain, D and bias is perturbed (x + 0.1 randn) so that they are tested.
"""
import json
import os
import sys
import tempfile
import types

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_fla_fixtures as base  # noqa: E402  (extraction helpers, stand-ins and stubs)
from make_fixtures import write_safetensors  # noqa: E402

OUT = base.OUT

FLA_FILES = [
    "fla/layers/mamba2.py",
    "fla/layers/utils.py",
    "fla/models/mamba2/configuration_mamba2.py",
    "fla/models/mamba2/modeling_mamba2.py",
    "fla/modules/l2warp.py",
]

_GATED_MLP_IMPORT = "from fla.modules.mlp import GatedMLP\n"
assert _GATED_MLP_IMPORT in base.STUBS["fla/modules/__init__.py"]

SHARED = [
    "transformers/__init__.py", "transformers/configuration_utils.py", "transformers/modeling_utils.py",
    "transformers/modeling_outputs.py", "transformers/modeling_layers.py", "transformers/utils/__init__.py",
    "transformers/utils/deprecation.py", "fla/__init__.py", "fla/utils.py", "fla/layers/__init__.py",
    "fla/models/__init__.py", "fla/ops/__init__.py", "fla/ops/utils/__init__.py", "fla/ops/utils/index.py",
]

STUBS = {name: base.STUBS[name] for name in SHARED}
STUBS.update({
    # fla's modules without the GatedMLP import (mlp.py is not extracted: Mamba2 has no MLP).
    "fla/modules/__init__.py": base.STUBS["fla/modules/__init__.py"].replace(_GATED_MLP_IMPORT, ""),
    "einops/__init__.py": '''
def rearrange(x, pattern, **sizes):
    """The patterns fla's Mamba2 layer and fla/layers/utils.py reach with these configs."""
    p = " ".join(pattern.split())
    if p == "(h p) -> h p":
        return x.reshape(-1, sizes["p"])
    raise NotImplementedError("einops stub: pattern " + repr(pattern))


def repeat(*args, **kwargs):
    raise NotImplementedError("einops stub: repeat (only used with attention masks)")
''',
    "transformers/utils/logging.py": '''
import logging as _logging


class _Logger(_logging.LoggerAdapter):
    def warning_once(self, *args, **kwargs):
        pass


def get_logger(name):
    return _Logger(_logging.getLogger(name), {})
''',
    "fla/models/mamba2/__init__.py": "",
    "fla/models/utils.py": '''
class Cache:
    """fla's cache as the Mamba2 layer uses it: one dict per layer, updated with update(layer_idx=..., ...)."""

    def __init__(self, states=None):
        self.states = list(states or [])

    @classmethod
    def from_legacy_cache(cls, past_key_values=None):
        return cls(past_key_values)

    def __len__(self):
        return len(self.states)

    def __getitem__(self, layer_idx):
        return self.states[layer_idx]

    def update(self, layer_idx=0, recurrent_state=None, conv_state=None, offset=1, **kwargs):
        while len(self.states) <= layer_idx:
            self.states.append({"recurrent_state": None, "conv_state": None})
        if recurrent_state is not None:
            self.states[layer_idx]["recurrent_state"] = recurrent_state
        if conv_state is not None:
            self.states[layer_idx]["conv_state"] = conv_state
        return self.states[layer_idx]


class FLAGenerationMixin:
    pass
''',
    "fla/modules/activations.py": '''
import torch.nn as nn

# fla's ACT2FN['silu'] and ['swish'] are its swish kernel, x * sigmoid(x).
ACT2FN = {"silu": nn.SiLU(), "swish": nn.SiLU()}
''',
    "fla/modules/layernorm_gated.py": '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNormGated(nn.Module):
    """fla's RMSNormGated with its rms_norm_ref math, computed in float32 and returned in x's dtype."""

    def __init__(self, hidden_size, eps=1e-5, group_size=None, norm_before_gate=False, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size, device=device, dtype=dtype))
        self.register_parameter("bias", None)
        self.group_size = group_size
        self.norm_before_gate = norm_before_gate

    def reset_parameters(self):
        nn.init.ones_(self.weight)

    def forward(self, x, z=None):
        u = x.float()
        gate = F.silu(z.float()) if z is not None else None
        if gate is not None and not self.norm_before_gate:
            u = u * gate
        size = self.group_size or u.shape[-1]
        grouped = u.reshape(*u.shape[:-1], u.shape[-1] // size, size)
        y = (grouped * torch.rsqrt(grouped.square().mean(-1, keepdim=True) + self.eps)).reshape(u.shape)
        y = y * self.weight.float()
        if gate is not None and self.norm_before_gate:
            y = y * gate
        return y.to(x.dtype)
''',
    "fla/modules/convolution.py": '''
def causal_conv1d(*args, **kwargs):
    raise NotImplementedError("stub: fla's Mamba2 torch_forward convolves with its own nn.Conv1d")


causal_conv1d_update = causal_conv1d
''',
})


def stub_torch_distributed():
    """modeling_mamba2.py imports DTensor, DeviceMesh and placement types (PyTorch 1.13 lacks them)."""
    base.stub_torch_distributed()
    placement = types.ModuleType("torch.distributed._tensor.placement_types")
    placement.Placement = type("Placement", (), {})
    placement.Replicate = type("Replicate", (), {})
    tensor_pkg = types.ModuleType("torch.distributed._tensor")
    tensor_pkg.placement_types = placement
    mesh = types.ModuleType("torch.distributed.device_mesh")
    mesh.DeviceMesh = type("DeviceMesh", (), {})
    sys.modules["torch.distributed._tensor"] = tensor_pkg
    sys.modules["torch.distributed._tensor.placement_types"] = placement
    sys.modules["torch.distributed.device_mesh"] = mesh


def extract(repo, root):
    saved = base.FLA_FILES, base.STUBS
    base.FLA_FILES, base.STUBS = FLA_FILES, STUBS
    try:
        return base.extract(repo, root)
    finally:
        base.FLA_FILES, base.STUBS = saved


def perturb(model, generator):
    """Norm gains, D and the biases (not dt_bias, already random) get + 0.1 randn."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith("norm_f.weight") or name.endswith(".D") or \
                    (name.endswith(".bias") and not name.endswith("dt_bias")):
                p.add_(0.1 * torch.randn(p.shape, generator=generator))


def decode_logits(model, config, ids):
    """fla's decode path, one token at a time, from a zero cache for every layer (so the first token decodes too)."""
    from fla.models.utils import Cache
    b = ids.shape[0]
    mixer = model.backbone.layers[0].mixer
    cache = Cache([{"conv_state": torch.zeros(b, mixer.conv_dim, config.conv_kernel),
                    "recurrent_state": torch.zeros(b, config.num_heads, config.head_dim, config.state_size)}
                   for _ in range(config.num_hidden_layers)])
    steps = []
    for t in range(ids.shape[1]):
        out = model(input_ids=ids[:, t:t + 1], past_key_values=cache, use_cache=True, return_dict=True)
        cache = out.past_key_values
        steps.append(out.logits)
    return torch.cat(steps, 1)


def rel_rms(a, b):
    return ((a - b).square().mean().sqrt() / b.square().mean().sqrt()).item()


def write_dir(name, tensors, io, config, torch_dtype):
    path = os.path.join(OUT, name)
    os.makedirs(path, exist_ok=True)
    meta = {"format": "pt", "source": "tools/interop/make_fla_mamba2_fixtures.py", "fla_commit": COMMIT[0]}
    write_safetensors(os.path.join(path, "model.safetensors"), tensors, meta)
    write_safetensors(os.path.join(path, "io.safetensors"), io, meta)
    cfg = config.to_dict()
    cfg["architectures"] = ["Mamba2ForCausalLM"]
    cfg["torch_dtype"] = torch_dtype
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)   # Python's json: dt_limit's inf as Infinity
        f.write("\n")


COMMIT = [None]


def mamba2_fixture():
    from fla.models.mamba2.configuration_mamba2 import Mamba2Config
    from fla.models.mamba2.modeling_mamba2 import Mamba2ForCausalLM
    config = Mamba2Config(hidden_size=32, num_hidden_layers=2, vocab_size=64, state_size=16, head_dim=16,
                          chunk_size=8, initializer_range=0.25)
    torch.manual_seed(21)
    model = Mamba2ForCausalLM(config).eval()
    g = torch.Generator().manual_seed(22)
    perturb(model, g)
    ids = torch.randint(0, config.vocab_size, (2, 12), generator=g)
    with torch.no_grad():
        out = model(input_ids=ids, labels=ids, use_cache=False, return_dict=True)
        decoded = decode_logits(model, config, ids)
    err = rel_rms(decoded, out.logits)
    assert err < 1e-5, f"fla's decode and prefill paths disagree with one group: {err}"
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    write_dir("mamba2", state, {"input_ids": ids, "logits": out.logits, "loss": out.loss.reshape(())}, config, "float32")
    print(f"mamba2: {sorted(state)}\n  logits rms {out.logits.square().mean().sqrt():.4f}, loss {out.loss.item():.5f}, "
          f"decode vs prefill {err:.2e}")


def mamba2_groups_fixture():
    from fla.models.mamba2.configuration_mamba2 import Mamba2Config
    from fla.models.mamba2.modeling_mamba2 import Mamba2ForCausalLM
    config = Mamba2Config(hidden_size=32, num_hidden_layers=2, vocab_size=64, state_size=16, head_dim=16, n_groups=2,
                          D_has_hdim=True, norm_before_gate=True, use_bias=True, use_conv_bias=False,
                          dt_limit=(0.0, 0.5), residual_in_fp32=False, conv_init=0.5, chunk_size=8,
                          initializer_range=0.25, tie_word_embeddings=True)
    torch.manual_seed(23)
    model = Mamba2ForCausalLM(config).eval()
    g = torch.Generator().manual_seed(24)
    perturb(model, g)
    # fla creates A_log and the RMSNorms (layers.i.norm, norm_f) in float32: a bfloat16 model keeps them so.
    wide = lambda k: k.endswith("A_log") or (k.endswith(".norm.weight") and ".mixer." not in k) or k.endswith("norm_f.weight")
    with torch.no_grad():
        for k, p in model.named_parameters():
            if not wide(k):
                p.copy_(p.to(torch.bfloat16).float())
    ids = torch.randint(0, config.vocab_size, (2, 12), generator=g)
    with torch.no_grad():
        prefill = model(input_ids=ids, labels=ids, use_cache=False, return_dict=True)
        decoded = decode_logits(model, config, ids)
        loss = F.cross_entropy(decoded[:, :-1].reshape(-1, config.vocab_size), ids[:, 1:].reshape(-1))
    state = model.state_dict()
    del state["lm_head.weight"]  # tied: save_pretrained leaves the copy out
    state = {k: (v if wide(k) else v.to(torch.bfloat16)).detach().contiguous() for k, v in state.items()}
    write_dir("mamba2_groups", state, {"input_ids": ids, "logits": decoded, "logits_prefill": prefill.logits,
                                       "loss": loss.reshape(())}, config, "bfloat16")
    print(f"mamba2_groups: {sorted((k, str(v.dtype)) for k, v in state.items())}\n  logits rms "
          f"{decoded.square().mean().sqrt():.4f}, loss {loss.item():.5f}, prefill (h % G) vs decode (h // (NH/G)) "
          f"{rel_rms(prefill.logits, decoded):.3f}")


def main():
    repo = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("FLA_REPO", "/work/.mirror/fla-org+flash-linear-attention/repo")
    stub_torch_distributed()
    with tempfile.TemporaryDirectory() as root:
        COMMIT[0] = extract(repo, root)
        sys.path.insert(0, root)
        torch.set_default_dtype(torch.float32)
        mamba2_fixture()
        mamba2_groups_fixture()
    for name in ("mamba2", "mamba2_groups"):
        d = os.path.join(OUT, name)
        print(f"{name}: {sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))} bytes")
    print(f"fla commit {COMMIT[0]}")


if __name__ == "__main__":
    main()
