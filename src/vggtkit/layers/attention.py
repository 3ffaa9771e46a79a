"""Multi-head self-attention with optional q/k LayerNorm, masked qkv bias and RoPE, computed by SDPA.

The module holds the parameters (keys ``qkv``, optional ``q_norm``/``k_norm``, ``proj``). Its maths are the
functions below, which :class:`~vggtkit.layers.block.Block` also calls piece by piece when it runs attention
over chunks of queries.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vggtkit.layers.rope import RopeTables, apply_rope


class Norm(NamedTuple):
    """A LayerNorm's parameters (cast to the input's dtype where it runs)."""

    weight: Tensor | None
    bias: Tensor | None
    eps: float


def norm_of(module: nn.Module) -> Norm | None:
    """The parameters of a LayerNorm, or None for an Identity."""
    if isinstance(module, nn.Identity):
        return None
    if not isinstance(module, nn.LayerNorm):
        raise TypeError(f"expected LayerNorm or Identity, got {type(module).__name__}")
    return Norm(module.weight, module.bias, module.eps)


def layer_norm(x: Tensor, norm: Norm | None, dtype: torch.dtype | None = None) -> Tensor:
    """LayerNorm over the last axis (None: x unchanged), computed in float32 and returned in ``dtype`` (default:
    x's), as autocast runs it."""
    if norm is None:
        return x
    weight = None if norm.weight is None else norm.weight.float()
    bias = None if norm.bias is None else norm.bias.float()
    return F.layer_norm(x.float(), x.shape[-1:], weight, bias, norm.eps).to(dtype or x.dtype)


class MaskedBiasLinear(nn.Linear):
    """A query/key/value projection whose bias is multiplied elementwise by a stored mask (buffer ``bias_mask``).

    DINOv3-style checkpoints (VGGT-Omega) keep the bias with such a mask, initialised to 1 on the queries, 0 on the
    keys and 1 on the values (the keys get no bias); the stored values are used as they are.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features, bias=True)
        self.register_buffer("bias_mask", torch.empty(out_features))
        self.reset_buffers()

    def reset_buffers(self) -> None:
        """The initial mask (1 on the queries and values, 0 on the keys); meta tensors are left as they are."""
        if self.bias_mask.is_meta:
            return
        third = self.out_features // 3
        with torch.no_grad():
            self.bias_mask.fill_(1.0)
            self.bias_mask[third : 2 * third] = 0.0

    def effective_bias(self) -> Tensor:
        return self.bias * self.bias_mask


class AttentionWeights(NamedTuple):
    """An attention layer's parameters, matrices in one compute dtype (see :meth:`Attention.weights`)."""

    num_heads: int
    qkv_w: Tensor
    qkv_b: Tensor | None
    q_norm: Norm | None
    k_norm: Norm | None
    proj_w: Tensor
    proj_b: Tensor | None

    @property
    def dim(self) -> int:
        return self.proj_w.shape[0]


class Attention(nn.Module):
    """Self-attention: qkv projection, per-head LayerNorm of q and k, RoPE, SDPA, output projection."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        qk_norm: bool = False,
        norm_eps: float = 1e-5,
        bias_mask: bool = False,
    ) -> None:
        super().__init__()
        if bias_mask and not qkv_bias:
            raise ValueError("a bias mask needs a qkv bias")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = MaskedBiasLinear(dim, 3 * dim) if bias_mask else nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.q_norm = nn.LayerNorm(self.head_dim, eps=norm_eps) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim, eps=norm_eps) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def weights(self, dtype: torch.dtype) -> AttentionWeights:
        """The parameters with the matrices (and the effective qkv bias) cast to ``dtype`` once."""
        qkv_b = self.qkv.effective_bias() if isinstance(self.qkv, MaskedBiasLinear) else self.qkv.bias
        return AttentionWeights(
            num_heads=self.num_heads,
            qkv_w=self.qkv.weight.to(dtype),
            qkv_b=None if qkv_b is None else qkv_b.to(dtype),
            q_norm=norm_of(self.q_norm),
            k_norm=norm_of(self.k_norm),
            proj_w=self.proj.weight.to(dtype),
            proj_b=None if self.proj.bias is None else self.proj.bias.to(dtype),
        )

    def forward(self, x: Tensor, rope: RopeTables | None = None, dtype: torch.dtype | None = None) -> Tensor:
        """x: (B, N, C) normalised tokens -> (B, N, C), computed in ``dtype`` (default: x's)."""
        return self_attention(x, self.weights(dtype or x.dtype), rope)


def project_heads(t: Tensor, num_heads: int, norm: Norm | None, rope: RopeTables | None) -> Tensor:
    """(B, n, C) projections -> normalised, rotated (B, n, heads, D) in t's dtype, a fresh tensor (never a view
    of t).

    The rotation runs in the tables' precision: float32 tables rotate reduced-precision projections in float32
    (from the float32 normalisation) and round once, as DINOv3-style RoPE does under autocast.
    """
    B, n, C = t.shape
    dtype = t.dtype
    t = t.view(B, n, num_heads, C // num_heads)
    work = dtype if rope is None else rope.cos.dtype
    if norm is not None:
        t = layer_norm(t, norm, work)
    elif rope is not None:
        t = t.to(work, copy=True)
    if rope is not None:
        apply_rope(t, rope, in_place=True)
    return t.to(dtype)


def sdpa_layout(t: Tensor) -> Tensor:
    """(B, n, heads, D) -> (B, heads, n, D) for SDPA: a contiguous copy for float32 on CPUs, where the kernel runs
    about 10 % faster on contiguous inputs (the same numbers), a view otherwise."""
    t = t.transpose(1, 2)
    return t.contiguous() if t.dtype == torch.float32 and t.device.type == "cpu" else t


def attention_output(q: Tensor, keys: Tensor, values: Tensor, w: AttentionWeights) -> Tensor:
    """SDPA of queries (B, n, heads, D) against keys/values (B, heads, N, D), then the output projection: (B, n, C)."""
    B, n = q.shape[:2]
    out = F.scaled_dot_product_attention(sdpa_layout(q), keys, values)  # (B, heads, n, D)
    return F.linear(out.transpose(1, 2).reshape(B, n, w.dim), w.proj_w, w.proj_b)


def self_attention(h: Tensor, w: AttentionWeights, rope: RopeTables | None) -> Tensor:
    """Attention of all N tokens of h (B, N, C) (normalised, any dtype; computed in the weights' dtype)."""
    C = w.dim
    qkv = F.linear(h.to(w.qkv_w.dtype), w.qkv_w, w.qkv_b)
    q, k, v = qkv.split(C, dim=-1)
    q = project_heads(q, w.num_heads, w.q_norm, rope)
    k = sdpa_layout(project_heads(k, w.num_heads, w.k_norm, rope))
    v = sdpa_layout(v.view(*v.shape[:2], w.num_heads, C // w.num_heads))
    return attention_output(q, k, v, w)
