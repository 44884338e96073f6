#!/usr/bin/python3
"""Writes the flash-linear-attention (fla) parity fixtures of the Discretax tests with fla's own layer and model code.

Run from the repository root with Debian's PyTorch (1.13; no triton, einops or transformers needed); the tests only
read the committed outputs, CI never runs this:

    /usr/bin/python3 tools/interop/make_fla_fixtures.py [path to a flash-linear-attention git checkout]

The checkout defaults to /work/.mirror/fla-org+flash-linear-attention/repo (or $FLA_REPO). The script extracts fla's
files at HEAD with `git show` into a temporary folder and imports them from there, unchanged:

    fla/layers/delta_net.py, fla/layers/gated_deltanet.py, fla/layers/utils.py, fla/models/hybrid.py,
    fla/models/delta_net/{configuration,modeling}_delta_net.py,
    fla/models/gated_deltanet/{configuration,modeling}_gated_deltanet.py,
    fla/modules/mlp.py (GatedMLP), fla/modules/l2warp.py,
    fla/ops/delta_rule/naive.py, fla/ops/gated_delta_rule/naive.py

Swapped (Triton-only code replaced by torch code written to fla's definitions; everything else is fla's):

    fla.ops.delta_rule.chunk_delta_rule / fused_recurrent_delta_rule
        -> fla's own naive `delta_rule_recurrence` (fla/ops/delta_rule/naive.py, which scales q by K^-1/2 as the
           kernels' default scale), after fla's l2norm of q and k when use_qk_l2norm_in_kernel, with the
           [B, T, H, D] <-> [B, H, T, D] transposes the naive function needs
    fla.ops.gated_delta_rule.chunk_gated_delta_rule / fused_recurrent_gated_delta_rule
        -> fla's own `naive_recurrent_gated_delta_rule` (fla/ops/gated_delta_rule/naive.py), after what the kernels
           fuse: l2norm of q and k, the gate g = -exp(A_log) * softplus(a + dt_bias) (fla's naive_gdn_gate formula),
           beta = sigmoid(b) (x 2 with allow_neg_eigval), and GVA (value head i reads q/k head i // (HV / H))
    fla.modules.l2norm          -> x * rsqrt(sum(x^2, -1) + 1e-6)                 (fla's l2norm_fwd kernel)
    fla.modules.RMSNorm         -> x * rsqrt(mean(x^2, -1) + eps) * weight, with fla's (residual, prenorm) form
                                   (fla's rms_norm_ref)
    fla.modules.FusedRMSNormGated -> rms(x) * weight * g * sigmoid(g)            (fla's swish-gate kernel)
    fla.modules.ShortConvolution  -> an nn.Conv1d subclass (the same parameters) computing the causal depthwise
                                   convolution y[t] = act(sum_j w[:, j] x[t - (K-1) + j]) with F.conv1d
    fla.modules.convolution.causal_conv1d (Gated DeltaNet's fused q/k/v convolution without a cache)
                                -> the same depthwise causal convolution with F.conv1d
    fla.modules.activations.swiglu / swiglu_linear -> silu(x) * y, then F.linear (fla's swiglu kernels)
    fla.modules.FusedCrossEntropyLoss -> nn.CrossEntropyLoss
Stubbed (imports only; their code is not reached with these configs): einops.rearrange (the two patterns the layers
use), transformers' PretrainedConfig / PreTrainedModel (post_init runs fla's _init_weights on every module and ties
lm_head to the embedding when tie_word_embeddings) / ModelOutput classes / logging / deprecate_kwarg /
GradientCheckpointingLayer, fla.models.utils (Cache; use_cache=False), fla.layers.attn (no `attn` config),
fla.ops.attnres (no attnres_block_size), fla.ops.utils.index and fla.utils.tensor_cache (no attention mask),
torch.distributed.tensor / DeviceMesh (tensor-parallel classes of mlp.py, PyTorch 1.13 lacks them).

Output, under tests/Discretax.Tests/Fixtures/interop/fla/ (fixed seeds; float32 unless said):

    layer_default/   fla DeltaNet(hidden_size=32, num_heads=4), fla's defaults: weights.safetensors (the layer's
                     state_dict), io.safetensors (input [2, 20, 32], output), layer.json (the kwargs)
    layer_gated/     DeltaNet(hidden 32, 2 heads, expand_k 0.5, expand_v 1.5, use_gate, allow_neg_eigval,
                     use_short_conv False, norm_eps 1e-6)
    layer_elu_sum/   DeltaNet(hidden 16, 2 heads, qk_activation elu, qk_norm sum, use_beta False, conv_bias True)
    delta_net/       DeltaNetForCausalLM (hidden 32, 2 layers, 4 heads, vocab 64, intermediate_size 64,
                     initializer_range 0.25): config.json (fla's config as save_pretrained writes it),
                     model.safetensors, io.safetensors (input_ids [2, 12] int64, logits [2, 12, 64], loss: fla's
                     next-token loss with labels = input_ids)
    gated_deltanet/  GatedDeltaNetForCausalLM (hidden 32, 2 layers, 2 heads of 8, 4 value heads, expand_v 1, vocab 64,
                     intermediate_size 64, tied embeddings): weights stored in bfloat16, logits computed in float32
                     from those bfloat16 values; io.safetensors as above

Every norm gain is perturbed (1 + 0.1 randn) so that the gains are tested, and the LMs use initializer_range 0.25
(fla's 0.02 makes the layers' contributions too small to test).
"""
import json
import os
import subprocess
import sys
import tempfile
import types

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "tests", "Discretax.Tests", "Fixtures", "interop", "fla")
sys.path.insert(0, HERE)
from make_fixtures import write_safetensors  # noqa: E402  (the hand-written safetensors writer)

FLA_FILES = [
    "fla/layers/delta_net.py",
    "fla/layers/gated_deltanet.py",
    "fla/layers/utils.py",
    "fla/models/hybrid.py",
    "fla/models/delta_net/configuration_delta_net.py",
    "fla/models/delta_net/modeling_delta_net.py",
    "fla/models/gated_deltanet/configuration_gated_deltanet.py",
    "fla/models/gated_deltanet/modeling_gated_deltanet.py",
    "fla/modules/mlp.py",
    "fla/modules/l2warp.py",
    "fla/ops/delta_rule/naive.py",
    "fla/ops/gated_delta_rule/naive.py",
]

# The swapped and stubbed modules, as source files placed next to fla's.
STUBS = {
    "einops/__init__.py": '''
def rearrange(x, pattern, **sizes):
    """The two patterns fla's DeltaNet layers use."""
    p = " ".join(pattern.split())
    if p == "... (h d) -> ... h d":
        return x.reshape(*x.shape[:-1], -1, sizes["d"])
    if p == "b t h d -> b t (h d)":
        return x.reshape(*x.shape[:2], -1)
    raise NotImplementedError("einops stub: pattern " + repr(pattern))


def repeat(*args, **kwargs):
    raise NotImplementedError("einops stub: repeat (only used with attention masks)")
''',
    "transformers/__init__.py": "__version__ = '0.0-stub'\n",
    "transformers/configuration_utils.py": '''
class PretrainedConfig:
    model_type = ""

    def __init__(self, pad_token_id=None, bos_token_id=None, eos_token_id=None, tie_word_embeddings=True, **kwargs):
        self.pad_token_id = pad_token_id
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self.tie_word_embeddings = tie_word_embeddings
        self.output_attentions = False
        self.output_hidden_states = False
        self.use_return_dict = True
        for k, v in kwargs.items():
            setattr(self, k, v)

    def to_dict(self):
        d = {k: v for k, v in self.__dict__.items()
             if k not in ("output_attentions", "output_hidden_states", "use_return_dict")}
        d["model_type"] = self.model_type
        return d
''',
    "transformers/modeling_utils.py": '''
import torch.nn as nn


class PreTrainedModel(nn.Module):
    config_class = None
    base_model_prefix = ""

    def __init__(self, config, *inputs, **kwargs):
        super().__init__()
        self.config = config

    def post_init(self):
        """transformers' post_init: fla's _init_weights on every module, then the tie of the output embedding."""
        self.apply(self._init_weights)
        if getattr(self.config, "tie_word_embeddings", False) and hasattr(self, "lm_head"):
            self.lm_head.weight = self.get_input_embeddings().weight
''',
    "transformers/modeling_outputs.py": '''
class _Output:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)
        self._values = tuple(v for v in kwargs.values() if v is not None)

    def __getitem__(self, i):
        return self._values[i]


class BaseModelOutputWithPast(_Output):
    pass


class CausalLMOutputWithPast(_Output):
    pass
''',
    "transformers/modeling_layers.py": '''
import torch.nn as nn


class GradientCheckpointingLayer(nn.Module):
    pass
''',
    "transformers/utils/__init__.py": "from transformers.utils import logging\n",
    "transformers/utils/logging.py": '''
import logging as _logging


def get_logger(name):
    return _logging.getLogger(name)
''',
    "transformers/utils/deprecation.py": '''
def deprecate_kwarg(*args, **kwargs):
    return lambda f: f
''',
    "fla/__init__.py": "",
    "fla/utils.py": '''
def tensor_cache(f):
    return f
''',
    "fla/layers/__init__.py": "",
    "fla/layers/attn.py": '''
class Attention:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("stub: fla's softmax attention layer is not part of these fixtures")
''',
    "fla/models/__init__.py": "",
    "fla/models/delta_net/__init__.py": "",
    "fla/models/gated_deltanet/__init__.py": "",
    "fla/models/utils.py": '''
class Cache:
    @classmethod
    def from_legacy_cache(cls, past_key_values=None):
        raise NotImplementedError("stub: the fixtures run with use_cache=False")


class FLAUnsupportedCacheGenerationMixin:
    pass
''',
    "fla/modules/__init__.py": '''
import torch
import torch.nn as nn
import torch.nn.functional as F

from fla.modules.mlp import GatedMLP


class RMSNorm(nn.Module):
    """fla's RMSNorm module with its rms_norm_ref math (residual add, then x * rsqrt(mean(x^2) + eps) * weight)."""

    def __init__(self, hidden_size, elementwise_affine=True, bias=False, eps=1e-5, device=None, dtype=None):
        super().__init__()
        self.hidden_size, self.eps = hidden_size, eps
        self.register_parameter("weight", None)
        self.register_parameter("bias", None)
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(hidden_size, device=device, dtype=dtype))
            if bias:
                self.bias = nn.Parameter(torch.zeros(hidden_size, device=device, dtype=dtype))

    def reset_parameters(self):
        if self.weight is not None:
            nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x, residual=None, prenorm=False, residual_in_fp32=False):
        if residual is not None:
            x = x + residual
        xf = x.float()
        y = xf * torch.rsqrt(xf.square().mean(-1, keepdim=True) + self.eps)
        if self.weight is not None:
            y = y * self.weight.float()
        if self.bias is not None:
            y = y + self.bias.float()
        y = y.to(x.dtype)
        return (y, x) if prenorm else y


class FusedRMSNormGated(nn.Module):
    """fla's FusedRMSNormGated: rms(x) * weight * swish(g) (or * sigmoid(g))."""

    def __init__(self, hidden_size, elementwise_affine=True, eps=1e-5, activation="swish", device=None, dtype=None):
        super().__init__()
        assert activation in ("swish", "silu", "sigmoid")
        self.hidden_size, self.eps, self.activation = hidden_size, eps, activation
        self.weight = nn.Parameter(torch.ones(hidden_size, device=device, dtype=dtype)) if elementwise_affine else None
        self.register_parameter("bias", None)

    def reset_parameters(self):
        if self.weight is not None:
            nn.init.ones_(self.weight)

    def forward(self, x, g, residual=None, prenorm=False, residual_in_fp32=False):
        assert residual is None and not prenorm
        xf, gf = x.float(), g.float()
        y = xf * torch.rsqrt(xf.square().mean(-1, keepdim=True) + self.eps)
        if self.weight is not None:
            y = y * self.weight.float()
        y = y * (gf * torch.sigmoid(gf) if self.activation in ("swish", "silu") else torch.sigmoid(gf))
        return y.to(x.dtype)


class ShortConvolution(nn.Conv1d):
    """fla's ShortConvolution (an nn.Conv1d, depthwise, padding K - 1): y[t] = act(sum_j w[:, 0, j] x[t - (K-1) + j] + b)."""

    def __init__(self, hidden_size, kernel_size, bias=False, activation="silu", backend="triton", device=None,
                 dtype=None, **kwargs):
        super().__init__(hidden_size, hidden_size, kernel_size, groups=hidden_size, bias=bias,
                         padding=kernel_size - 1, device=device, dtype=dtype)
        self.hidden_size = hidden_size
        self.activation = activation
        self.backend = backend

    def forward(self, x, residual=None, mask=None, cache=None, output_final_state=False, cu_seqlens=None, **kwargs):
        assert residual is None and mask is None and cache is None and cu_seqlens is None
        T = x.shape[1]
        y = F.conv1d(x.transpose(1, 2), self.weight, self.bias, padding=self.kernel_size[0] - 1,
                     groups=self.hidden_size)[..., :T].transpose(1, 2)
        if self.activation in ("silu", "swish"):
            y = F.silu(y)
        return y, None


class FusedCrossEntropyLoss(nn.CrossEntropyLoss):
    def __init__(self, inplace_backward=False, **kwargs):
        super().__init__()


class FusedLinearCrossEntropyLoss(nn.Module):
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("stub: fuse_linear_cross_entropy is off in the fixtures")
''',
    "fla/modules/activations.py": '''
import torch.nn.functional as F


def swiglu(x, y):
    return F.silu(x.float()).to(x.dtype) * y


def swiglu_linear(x, y, weight, bias):
    return F.linear(swiglu(x, y), weight, bias)


def powglu(*args, **kwargs):
    raise NotImplementedError("stub: hidden_act powlu is not part of these fixtures")


powglu_linear = powglu
''',
    "fla/modules/l2norm.py": '''
import torch


def l2norm(x, eps=1e-6, output_dtype=None):
    """fla's l2norm_fwd: x * rsqrt(sum(x^2) + eps) over the last dimension, in float32."""
    xf = x.float()
    y = xf * torch.rsqrt(xf.square().sum(-1, keepdim=True) + eps)
    return y.to(output_dtype or x.dtype)
''',
    "fla/ops/__init__.py": "",
    "fla/ops/attnres.py": '''
def fused_attnres(*args, **kwargs):
    raise NotImplementedError("stub: attnres_block_size is None in the fixtures")
''',
    "fla/ops/utils/__init__.py": "",
    "fla/ops/utils/index.py": '''
def prepare_cu_seqlens_from_mask(*args, **kwargs):
    raise NotImplementedError("stub: no attention mask in the fixtures")


prepare_lens_from_mask = prepare_cu_seqlens_from_mask
''',
    "fla/ops/delta_rule/__init__.py": '''
from fla.modules.l2norm import l2norm
from fla.ops.delta_rule.naive import delta_rule_recurrence


def chunk_delta_rule(q, k, v, beta, scale=None, initial_state=None, output_final_state=False, cu_seqlens=None,
                     use_qk_l2norm_in_kernel=False, **kwargs):
    """fla's delta rule through its naive recurrence ([B, T, H, D] in and out, as the kernels)."""
    assert scale is None and cu_seqlens is None  # the naive function scales by K^-1/2, the kernels' default
    if use_qk_l2norm_in_kernel:
        q, k = l2norm(q), l2norm(k)
    o, s = delta_rule_recurrence(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), beta.transpose(1, 2),
                                 initial_state=initial_state, output_final_state=output_final_state)
    return o.transpose(1, 2), s


fused_recurrent_delta_rule = chunk_delta_rule
''',
    "fla/ops/gated_delta_rule/__init__.py": '''
import torch
import torch.nn.functional as F

from fla.modules.l2norm import l2norm
from fla.ops.gated_delta_rule.naive import naive_recurrent_gated_delta_rule


def chunk_gated_delta_rule(q, k, v, g, beta, scale=None, initial_state=None, output_final_state=False,
                           use_qk_l2norm_in_kernel=False, use_beta_sigmoid_in_kernel=False, allow_neg_eigval=False,
                           state_v_first=False, cu_seqlens=None, use_gate_in_kernel=False, A_log=None, dt_bias=None,
                           **kwargs):
    """fla's gated delta rule through its naive recurrence, after what the kernels fuse (gate, beta, l2norm, GVA)."""
    assert cu_seqlens is None
    if use_qk_l2norm_in_kernel:
        q, k = l2norm(q), l2norm(k)
    if use_gate_in_kernel:
        g = g.float()
        if dt_bias is not None:
            g = g + dt_bias.float()
        g = -A_log.float().exp() * F.softplus(g)
    if use_beta_sigmoid_in_kernel:
        beta = beta.float().sigmoid()
        if allow_neg_eigval:
            beta = beta * 2
    H, HV = q.shape[2], v.shape[2]
    if HV > H:
        q, k = q.repeat_interleave(HV // H, dim=2), k.repeat_interleave(HV // H, dim=2)
    o, s = naive_recurrent_gated_delta_rule(q, k, v, beta, g, scale=scale, initial_state=initial_state,
                                            output_final_state=output_final_state)
    if s is not None and state_v_first:
        s = s.transpose(-1, -2)
    return o.to(v.dtype), s


fused_recurrent_gated_delta_rule = chunk_gated_delta_rule
''',
    "fla/modules/convolution.py": '''
import torch.nn.functional as F

from fla.modules import ShortConvolution


def causal_conv1d(x, weight, bias=None, activation=None, backend=None, **kwargs):
    """fla's causal_conv1d (no cache): y[t] = act(sum_j weight[:, j] x[t - (K-1) + j] + bias), weight [D, K]."""
    assert not kwargs.get("initial_state") and not kwargs.get("cu_seqlens") and not kwargs.get("output_final_state")
    T, K = x.shape[1], weight.shape[-1]
    y = F.conv1d(x.transpose(1, 2), weight.unsqueeze(1), bias, padding=K - 1, groups=weight.shape[0])[..., :T]
    y = y.transpose(1, 2)
    if activation in ("silu", "swish"):
        y = F.silu(y)
    return y, None
''',
}


def stub_torch_distributed():
    """mlp.py imports tensor-parallel names PyTorch 1.13 lacks; they are used only by its ParallelStyle classes."""
    import torch.distributed as dist
    tensor = types.ModuleType("torch.distributed.tensor")
    for name in ("Placement", "Replicate", "Shard", "DTensor"):
        setattr(tensor, name, type(name, (), {}))
    tensor.distribute_module = lambda *a, **k: None
    parallel = types.ModuleType("torch.distributed.tensor.parallel")
    parallel.ParallelStyle = type("ParallelStyle", (), {})
    tensor.parallel = parallel
    sys.modules["torch.distributed.tensor"] = tensor
    sys.modules["torch.distributed.tensor.parallel"] = parallel
    if not hasattr(dist, "DeviceMesh"):
        dist.DeviceMesh = type("DeviceMesh", (), {})


def extract(repo, root):
    commit = subprocess.check_output(["git", "-C", repo, "rev-parse", "HEAD"], text=True).strip()
    for path in FLA_FILES:
        text = subprocess.check_output(["git", "-C", repo, "show", "HEAD:" + path], text=True)
        write(os.path.join(root, path), text)
    for path, text in STUBS.items():
        target = os.path.join(root, path)
        assert not os.path.exists(target), path  # a stub never hides a file of fla's that was extracted
        write(target, text.lstrip("\n"))
    return commit


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def perturb_norms(module, generator):
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(0.1 * torch.randn(p.shape, generator=generator))


def save_dir(path, tensors, io, config=None, dtype=None, meta=None):
    os.makedirs(path, exist_ok=True)
    weights = {k: v.detach().contiguous() if dtype is None else v.detach().to(dtype).contiguous() for k, v in tensors.items()}
    metadata = {"format": "pt", "source": "tools/interop/make_fla_fixtures.py"}
    metadata.update(meta or {})
    name = "model.safetensors" if config is not None else "weights.safetensors"
    write_safetensors(os.path.join(path, name), weights, metadata)
    write_safetensors(os.path.join(path, "io.safetensors"), io, metadata)
    if config is not None:
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)
            f.write("\n")


def layer_fixture(name, kwargs, seed, length=20):
    from fla.layers.delta_net import DeltaNet
    torch.manual_seed(seed)
    layer = DeltaNet(**kwargs).eval()
    g = torch.Generator().manual_seed(seed + 1)
    perturb_norms(layer, g)
    x = torch.randn(2, length, kwargs["hidden_size"], generator=g)
    with torch.no_grad():
        y, _, _ = layer(x)
    path = os.path.join(OUT, name)
    save_dir(path, layer.state_dict(), {"input": x, "output": y}, meta=FIXTURE_META)
    with open(os.path.join(path, "layer.json"), "w") as f:
        json.dump(kwargs, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"{name}: {sorted(layer.state_dict())} output rms {y.square().mean().sqrt():.4f}")


def lm_fixture(name, config, model_class, seed, weights_dtype=None):
    torch.manual_seed(seed)
    model = model_class(config).eval()
    g = torch.Generator().manual_seed(seed + 1)
    perturb_norms(model, g)
    if weights_dtype is not None:  # the stored (rounded) values are the ones the reference computes with
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(weights_dtype).float())
    ids = torch.randint(0, config.vocab_size, (2, 12), generator=g)
    with torch.no_grad():
        out = model(input_ids=ids, labels=ids, use_cache=False, return_dict=True)
    state = model.state_dict()
    if config.tie_word_embeddings:  # save_pretrained leaves the tied copy out
        del state["lm_head.weight"]
    cfg = config.to_dict()
    cfg["architectures"] = [model_class.__name__]
    cfg["torch_dtype"] = "bfloat16" if weights_dtype == torch.bfloat16 else "float32"
    save_dir(os.path.join(OUT, name), state, {"input_ids": ids, "logits": out.logits, "loss": out.loss.reshape(())},
             config=cfg, dtype=weights_dtype, meta=FIXTURE_META)
    print(f"{name}: {len(state)} tensors, logits rms {out.logits.square().mean().sqrt():.4f}, loss {out.loss.item():.5f}")


FIXTURE_META = {}


def main():
    repo = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("FLA_REPO", "/work/.mirror/fla-org+flash-linear-attention/repo")
    stub_torch_distributed()
    with tempfile.TemporaryDirectory() as root:
        commit = extract(repo, root)
        FIXTURE_META["fla_commit"] = commit
        sys.path.insert(0, root)
        torch.set_default_dtype(torch.float32)

        layer_fixture("layer_default", {"hidden_size": 32, "num_heads": 4}, seed=1)
        layer_fixture("layer_gated", {"hidden_size": 32, "num_heads": 2, "expand_k": 0.5, "expand_v": 1.5,
                                      "use_gate": True, "allow_neg_eigval": True, "use_short_conv": False,
                                      "norm_eps": 1e-6}, seed=2)
        layer_fixture("layer_elu_sum", {"hidden_size": 16, "num_heads": 2, "qk_activation": "elu", "qk_norm": "sum",
                                        "use_beta": False, "conv_bias": True}, seed=3)

        from fla.models.delta_net.configuration_delta_net import DeltaNetConfig
        from fla.models.delta_net.modeling_delta_net import DeltaNetForCausalLM
        lm_fixture("delta_net", DeltaNetConfig(hidden_size=32, num_hidden_layers=2, num_heads=4, vocab_size=64,
                                               intermediate_size=64, initializer_range=0.25), DeltaNetForCausalLM, seed=4)

        from fla.models.gated_deltanet.configuration_gated_deltanet import GatedDeltaNetConfig
        from fla.models.gated_deltanet.modeling_gated_deltanet import GatedDeltaNetForCausalLM
        lm_fixture("gated_deltanet", GatedDeltaNetConfig(hidden_size=32, num_hidden_layers=2, num_heads=2, head_dim=8,
                                                         num_v_heads=4, expand_v=1, vocab_size=64, intermediate_size=64,
                                                         initializer_range=0.25, tie_word_embeddings=True),
                   GatedDeltaNetForCausalLM, seed=5, weights_dtype=torch.bfloat16)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"fla commit {commit}; {total} bytes under {OUT}")


if __name__ == "__main__":
    main()
