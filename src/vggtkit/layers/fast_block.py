"""Fast inference path of :class:`~vggtkit.layers.Block`: in place, chunked over tokens, explicit precision.

``Block.forward`` is the reference. :func:`block_forward_` computes the same function with the block's parameters
but (1) updates the float32 residual stream in place, (2) runs attention and the MLP over chunks of queries, so
besides the residual stream only the keys and values of all tokens are held (memory linear in the token count; SDPA
uses memory-efficient kernels for each chunk on every device), (3) applies a precomputed rotary embedding, and
(4) runs the matrix products in ``dtype`` (float32, bfloat16 or float16) with the residual stream, LayerNorms of
the residual stream and LayerScale in float32, as the official code does under autocast. In float32 it reproduces
``Block.forward`` to float32 rounding.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vggtkit.layers.block import Block
from vggtkit.layers.layer_scale import LayerScale
from vggtkit.layers.rope import RopeTables, apply_rope_


class _Norm(NamedTuple):
    weight: Tensor | None
    bias: Tensor | None
    eps: float


class _BlockWeights(NamedTuple):
    norm1: _Norm
    qkv_w: Tensor
    qkv_b: Tensor | None
    q_w: Tensor
    q_b: Tensor | None
    kv_w: Tensor
    kv_b: Tensor | None
    q_norm: _Norm | None
    k_norm: _Norm | None
    proj_w: Tensor
    proj_b: Tensor | None
    gamma1: Tensor | None
    norm2: _Norm
    fc1_w: Tensor
    fc1_b: Tensor | None
    fc2_w: Tensor
    fc2_b: Tensor | None
    gamma2: Tensor | None


def _cast(t: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    return None if t is None else t.to(dtype)


def _norm(module: nn.Module, dtype: torch.dtype) -> _Norm | None:
    if isinstance(module, nn.Identity):
        return None
    if not isinstance(module, nn.LayerNorm):
        raise TypeError(f"fast path supports LayerNorm or Identity norms, got {type(module).__name__}")
    return _Norm(_cast(module.weight, dtype), _cast(module.bias, dtype), module.eps)


def _gamma(module: nn.Module) -> Tensor | None:
    if isinstance(module, nn.Identity):
        return None
    if not isinstance(module, LayerScale):
        raise TypeError(f"fast path supports LayerScale or Identity, got {type(module).__name__}")
    return module.gamma.float()


def prepare_block(block: Block, dtype: torch.dtype) -> _BlockWeights:
    """Cast the block's matrices to ``dtype`` once per call (a no-op when they already are)."""
    attn, mlp = block.attn, block.mlp
    C = attn.qkv.in_features
    qkv_w = attn.qkv.weight.to(dtype)
    qkv_b = _cast(attn.qkv.bias, dtype)
    return _BlockWeights(
        norm1=_norm(block.norm1, torch.float32),
        qkv_w=qkv_w,
        qkv_b=qkv_b,
        q_w=qkv_w[:C],
        q_b=None if qkv_b is None else qkv_b[:C],
        kv_w=qkv_w[C:],
        kv_b=None if qkv_b is None else qkv_b[C:],
        q_norm=_norm(attn.q_norm, torch.float32),
        k_norm=_norm(attn.k_norm, torch.float32),
        proj_w=attn.proj.weight.to(dtype),
        proj_b=_cast(attn.proj.bias, dtype),
        gamma1=_gamma(block.ls1),
        norm2=_norm(block.norm2, torch.float32),
        fc1_w=mlp.fc1.weight.to(dtype),
        fc1_b=_cast(mlp.fc1.bias, dtype),
        fc2_w=mlp.fc2.weight.to(dtype),
        fc2_b=_cast(mlp.fc2.bias, dtype),
        gamma2=_gamma(block.ls2),
    )


def _layer_norm(x: Tensor, norm: _Norm | None) -> Tensor:
    if norm is None:
        return x
    return F.layer_norm(x, x.shape[-1:], norm.weight, norm.bias, norm.eps)


def _add_scaled_(x: Tensor, branch: Tensor, gamma: Tensor | None) -> None:
    """x += branch * gamma, in float32 (x is the float32 residual stream).

    In float32 this is two passes with the reference's rounding; a reduced-precision branch is scaled and added
    in one fused pass (no float32 copy of it).
    """
    if gamma is None:
        x.add_(branch)
    elif branch.dtype != x.dtype:
        x.addcmul_(branch, gamma)
    else:
        x.add_(branch.mul_(gamma))


def _heads(t: Tensor, num_heads: int, norm: _Norm | None, rope: RopeTables | None) -> Tensor:
    """(B, n, C) projections -> normalised, rotated (B, n, heads, D) (a fresh tensor)."""
    B, n, C = t.shape
    t = t.view(B, n, num_heads, C // num_heads)
    if norm is not None:
        t = _layer_norm(t, norm)
    elif rope is not None:
        t = t.clone()
    if rope is not None:
        apply_rope_(t, rope)
    return t


def block_forward_(
    block: Block,
    x: Tensor,
    rope: RopeTables | None = None,
    token_chunk: int = 2048,
    dtype: torch.dtype = torch.float32,
    weights: _BlockWeights | None = None,
    mlp_chunk: int | None = None,
) -> Tensor:
    """Apply ``block`` to x in place.

    Args:
        x: (B, N, C) float32 residual stream; attention runs over N within each of the B sequences.
        rope: rotation tables of the N tokens (None: no rotary embedding).
        token_chunk: queries per attention pass.
        dtype: precision of the matrix products and attention.
        weights: ``prepare_block(block, dtype)`` when the caller reuses it over several calls.
        mlp_chunk: tokens per MLP pass (None: ``token_chunk``).

    Returns:
        x, updated.
    """
    w = weights or prepare_block(block, dtype)
    B, N, C = x.shape
    H = block.attn.num_heads
    D = C // H
    mlp_chunk = mlp_chunk or token_chunk
    if token_chunk >= N:
        return _block_one_pass_(x, w, H, rope, dtype, mlp_chunk)
    chunks = [(s, min(s + token_chunk, N)) for s in range(0, N, token_chunk)]

    # Pass 1: keys and values of every token (all that attention needs besides the current queries), stored
    # (B, heads, N, D) as attention reads them.
    keys = torch.empty(B, H, N, D, dtype=dtype, device=x.device)
    values = torch.empty(B, H, N, D, dtype=dtype, device=x.device)
    for s, e in chunks:
        h = _layer_norm(x[:, s:e], w.norm1).to(dtype)
        kv = F.linear(h, w.kv_w, w.kv_b)
        del h
        k, v = kv.split(C, dim=-1)
        keys[:, :, s:e] = _heads(k, H, w.k_norm, None if rope is None else rope.slice(s, e)).transpose(1, 2)
        values[:, :, s:e] = v.view(B, e - s, H, D).transpose(1, 2)
        del kv, k, v

    # Pass 2, per query chunk: attention, residual, MLP, residual. The chunk's rows of x are still the input
    # rows when its queries are computed, since chunks do not overlap.
    for s, e in chunks:
        xs = x[:, s:e]
        h = _layer_norm(xs, w.norm1).to(dtype)
        q = _heads(F.linear(h, w.q_w, w.q_b), H, w.q_norm, None if rope is None else rope.slice(s, e))
        del h
        attn = F.scaled_dot_product_attention(_sdpa_layout(q, dtype), keys, values)  # (B, H, n, D)
        del q
        _attention_out_and_mlp_(xs, attn, w, dtype, mlp_chunk)
        del attn
    return x


def _sdpa_layout(t: Tensor, dtype: torch.dtype) -> Tensor:
    """(B, n, heads, D) -> (B, heads, n, D) for SDPA: a copy in float32, where the CPU kernel runs about 10%
    faster on contiguous inputs (the same numbers), a view otherwise."""
    t = t.transpose(1, 2)
    return t.contiguous() if dtype == torch.float32 and t.device.type == "cpu" else t


def _attention_out_and_mlp_(
    xs: Tensor, attn: Tensor, w: _BlockWeights, dtype: torch.dtype, mlp_chunk: int
) -> None:
    """xs += ls1(proj(attn)); xs += ls2(mlp(norm2(xs))), in place. attn: (B, heads, n, D) from SDPA."""
    B, n, C = xs.shape
    attn = F.linear(attn.transpose(1, 2).reshape(B, n, C), w.proj_w, w.proj_b)
    _add_scaled_(xs, attn, w.gamma1)
    del attn
    _mlp_(xs, w, dtype, mlp_chunk)


def _mlp_(xs: Tensor, w: _BlockWeights, dtype: torch.dtype, mlp_chunk: int) -> None:
    """xs (B, n, C) += ls2(mlp(norm2(xs))), in place, in passes of about ``mlp_chunk`` tokens (B * rows).

    Every token is computed on its own, so passes give the same numbers as one pass; they bound the hidden layer
    (mlp_ratio times wider than xs). The passes are of equal size, which keeps the matrix products efficient.
    """
    B, n, _ = xs.shape
    passes = -(-B * n // mlp_chunk)
    rows = -(-n // passes)
    for s in range(0, n, rows):
        part = xs[:, s : s + rows]
        h = F.linear(_layer_norm(part, w.norm2).to(dtype), w.fc1_w, w.fc1_b)
        h = F.linear(torch.ops.aten.gelu_(h), w.fc2_w, w.fc2_b)  # exact (erf) GELU, in place
        _add_scaled_(part, h, w.gamma2)
        del h


def _block_one_pass_(
    x: Tensor, w: _BlockWeights, H: int, rope: RopeTables | None, dtype: torch.dtype, mlp_chunk: int
) -> Tensor:
    """The whole sequence in one pass (it fits in one token chunk): no key/value buffers needed."""
    B, N, C = x.shape
    qkv = F.linear(_layer_norm(x, w.norm1).to(dtype), w.qkv_w, w.qkv_b)
    q, k, v = qkv.split(C, dim=-1)
    q, k = _heads(q, H, w.q_norm, rope), _heads(k, H, w.k_norm, rope)
    v = v.view(B, N, H, C // H)
    attn = F.scaled_dot_product_attention(
        _sdpa_layout(q, dtype), _sdpa_layout(k, dtype), _sdpa_layout(v, dtype)
    )
    del q, k, v, qkv
    _attention_out_and_mlp_(x, attn, w, dtype, mlp_chunk)
    return x
