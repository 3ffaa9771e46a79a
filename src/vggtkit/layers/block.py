"""Pre-norm transformer block with LayerScale, shared by every transformer of both model families.

``x <- x + ls1(attn(norm1(x))); x <- x + ls2(mlp(norm2(x)))``. One forward serves training and inference; how it
runs is given explicitly:

* ``dtype``: precision of the matrix products and of attention. The residual stream x keeps its own dtype
  (float32 in the models) and its LayerNorms run in float32, as under the official code's autocast.
* ``token_chunk``: queries per attention pass and tokens per MLP pass. With fewer tokens than that, one pass;
  otherwise the keys and values of all tokens are computed first and each chunk of queries then runs attention,
  its residual update and the MLP, so besides x only the keys and values are held (memory linear in the number of
  tokens; SDPA picks its memory-efficient kernels for each chunk on every device).
* ``batch_chunk``: sequences per pass (frames of frame attention, for instance).
* ``in_place``: update x in place and free every intermediate at once (inference: autograd needs the inputs it
  saved, so it requires ``in_place=False``).

With the defaults it is the plain block; every setting computes the same function up to float rounding.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vggtkit.layers.attention import (
    Attention,
    AttentionWeights,
    Norm,
    attention_output,
    layer_norm,
    norm_of,
    project_heads,
    self_attention,
)
from vggtkit.layers.layer_scale import LayerScale
from vggtkit.layers.mlp import Mlp, MlpWeights, mlp
from vggtkit.layers.rope import RopeTables


class BlockWeights(NamedTuple):
    """A block's parameters with its matrices in one compute dtype (see :meth:`Block.weights`)."""

    norm1: Norm
    attn: AttentionWeights
    gamma1: Tensor | None
    norm2: Norm
    mlp: MlpWeights
    gamma2: Tensor | None

    @property
    def dtype(self) -> torch.dtype:
        return self.attn.qkv_w.dtype


class Block(nn.Module):
    """Keys: ``norm1``, ``attn``, ``ls1``, ``norm2``, ``mlp``, ``ls2``.

    ``norm_eps`` is 1e-5 for VGGT's own blocks and 1e-6 inside DINOv2; ``bias_mask`` gives the qkv projection a
    stored bias mask (DINOv3-style blocks).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        init_values: float | None = None,
        qk_norm: bool = False,
        norm_eps: float = 1e-5,
        bias_mask: bool = False,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qk_norm=qk_norm, norm_eps=norm_eps, bias_mask=bias_mask)
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()

    def weights(self, dtype: torch.dtype) -> BlockWeights:
        """The parameters with the matrices cast to ``dtype`` once (callers running many passes reuse them)."""
        return BlockWeights(
            norm1=norm_of(self.norm1),
            attn=self.attn.weights(dtype),
            gamma1=_gamma(self.ls1),
            norm2=norm_of(self.norm2),
            mlp=self.mlp.weights(dtype),
            gamma2=_gamma(self.ls2),
        )

    def forward(
        self,
        x: Tensor,
        rope: RopeTables | None = None,
        *,
        dtype: torch.dtype | None = None,
        token_chunk: int | None = None,
        batch_chunk: int | None = None,
        in_place: bool = False,
        weights: BlockWeights | None = None,
    ) -> Tensor:
        """Apply the block (see the module docstring for the execution arguments).

        Args:
            x: (B, N, C) residual stream; attention runs over the N tokens of each of the B sequences.
            rope: rotation of the N tokens (None: no rotary embedding).
            dtype: compute precision (default: x's dtype).
            weights: ``self.weights(dtype)`` when the caller reuses it over several calls.

        Returns:
            (B, N, C): x itself when ``in_place``, else a new tensor.
        """
        w = weights or self.weights(dtype or x.dtype)
        B = x.shape[0]
        if batch_chunk is None or batch_chunk >= B:
            return _block(x, w, rope, token_chunk, in_place)
        parts = [
            _block(x[b : b + batch_chunk], w, rope, token_chunk, in_place) for b in range(0, B, batch_chunk)
        ]
        return x if in_place else torch.cat(parts)


def _gamma(module: nn.Module) -> Tensor | None:
    if isinstance(module, nn.Identity):
        return None
    if not isinstance(module, LayerScale):
        raise TypeError(f"expected LayerScale or Identity, got {type(module).__name__}")
    return module.gamma


def _block(
    x: Tensor, w: BlockWeights, rope: RopeTables | None, token_chunk: int | None, in_place: bool
) -> Tensor:
    N = x.shape[1]
    if token_chunk is None or token_chunk >= N:
        x = _residual(x, self_attention(layer_norm(x, w.norm1), w.attn, rope), w.gamma1, in_place)
        return _mlp(x, w, token_chunk, in_place)
    return _block_in_chunks(x, w, rope, token_chunk, in_place)


def _block_in_chunks(
    x: Tensor, w: BlockWeights, rope: RopeTables | None, token_chunk: int, in_place: bool
) -> Tensor:
    """The block over chunks of queries: keys and values of all tokens first, then per chunk attention, residual
    and MLP. A chunk's rows of x still hold the block's input when its queries are computed (chunks are
    disjoint), so updating them in place is exact."""
    B, N, C = x.shape
    a = w.attn
    H = a.num_heads
    chunks = [(s, min(s + token_chunk, N)) for s in range(0, N, token_chunk)]
    keys = torch.empty(B, H, N, C // H, dtype=w.dtype, device=x.device)
    values = torch.empty_like(keys)
    kv_w, kv_b = a.qkv_w[C:], None if a.qkv_b is None else a.qkv_b[C:]
    for s, e in chunks:
        kv = F.linear(layer_norm(x[:, s:e], w.norm1).to(w.dtype), kv_w, kv_b)
        k, v = kv.split(C, dim=-1)
        keys[:, :, s:e] = project_heads(k, H, a.k_norm, _rows(rope, s, e)).transpose(1, 2)
        values[:, :, s:e] = v.view(B, e - s, H, C // H).transpose(1, 2)
        del kv, k, v

    out = x if in_place else torch.empty_like(x)
    q_w, q_b = a.qkv_w[:C], None if a.qkv_b is None else a.qkv_b[:C]
    for s, e in chunks:
        xs = x[:, s:e]
        q = F.linear(layer_norm(xs, w.norm1).to(w.dtype), q_w, q_b)
        branch = attention_output(project_heads(q, H, a.q_norm, _rows(rope, s, e)), keys, values, a)
        del q
        xs = _mlp(_residual(xs, branch, w.gamma1, in_place), w, token_chunk, in_place)
        del branch
        if not in_place:
            out[:, s:e] = xs
    return out


def _rows(rope: RopeTables | None, start: int, stop: int) -> RopeTables | None:
    return None if rope is None else rope.slice(start, stop)


def _residual(x: Tensor, branch: Tensor, gamma: Tensor | None, in_place: bool) -> Tensor:
    """x + branch * gamma in x's dtype (a reduced-precision branch is promoted, as by LayerScale's float32 gamma)."""
    if not in_place:
        return x + (branch if gamma is None else branch * gamma)
    if gamma is None:
        return x.add_(branch)
    if branch.dtype != x.dtype:  # one fused pass, no float32 copy of the branch
        return x.addcmul_(branch, gamma)
    return x.add_(branch.mul_(gamma))


def _mlp(x: Tensor, w: BlockWeights, token_chunk: int | None, in_place: bool) -> Tensor:
    """x + ls2(mlp(norm2(x))) in passes of about ``token_chunk`` tokens over all B sequences.

    Every token is computed on its own, so the passes give the same numbers as one pass; they bound the hidden
    layer, ``mlp_ratio`` times wider than x. The passes are of equal size, which keeps the products efficient.
    """
    B, n, _ = x.shape
    passes = 1 if token_chunk is None else -(-B * n // token_chunk)
    if passes == 1:
        return _residual(x, _mlp_branch(x, w, in_place), w.gamma2, in_place)
    rows = -(-n // passes)
    parts = []
    for s in range(0, n, rows):
        part = x[:, s : s + rows]
        parts.append(_residual(part, _mlp_branch(part, w, in_place), w.gamma2, in_place))
    return x if in_place else torch.cat(parts, dim=1)


def _mlp_branch(x: Tensor, w: BlockWeights, in_place: bool) -> Tensor:
    return mlp(layer_norm(x, w.norm2), w.mlp, in_place)
