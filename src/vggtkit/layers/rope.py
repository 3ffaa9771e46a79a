"""Rotary position embedding (RoPE) as precomputed tables, shared by every attention block that uses it.

A rotation is described once per token sequence by :class:`RopeTables` and applied to queries and keys of any
number of heads. Channels are rotated in pairs (rotate-half layout): the head dimension D is split into
``groups`` equal parts, and inside each part channel i pairs with channel i + D / (2 * groups). VGGT rotates two
groups (the first half of each head by the token's row, the second by its column); DINOv3-style RoPE (VGGT-Omega)
rotates one group whose angles are [row | col | row | col].
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class RopeTables(NamedTuple):
    """The rotation of each token of a sequence, broadcast over heads.

    cos, sin_signed: (N, 1, D); ``sin_signed`` carries the rotate-half sign (-sin for the first channel of each
    pair). groups: rotate-half groups per head (see the module docstring).
    """

    cos: Tensor
    sin_signed: Tensor
    groups: int

    def repeat(self, times: int) -> RopeTables:
        """Tables of a sequence made of ``times`` copies of this one (global attention over frames)."""
        if times == 1:
            return self
        return RopeTables(self.cos.repeat(times, 1, 1), self.sin_signed.repeat(times, 1, 1), self.groups)

    def slice(self, start: int, stop: int) -> RopeTables:
        """Tables of tokens ``start .. stop - 1``."""
        return RopeTables(self.cos[start:stop], self.sin_signed[start:stop], self.groups)

    def to(self, dtype: torch.dtype) -> RopeTables:
        return RopeTables(self.cos.to(dtype), self.sin_signed.to(dtype), self.groups)


def rope_tables(angles: Tensor, groups: int, dtype: torch.dtype = torch.float32) -> RopeTables:
    """Tables from per-token angles (N, D / 2): angle j rotates the j-th pair, in the order the groups hold them.

    Args:
        angles: (N, D/2) float32 radians, group-major (the pairs of group 0 first).
        groups: rotate-half groups per head.
    """
    N, half = angles.shape
    per_group = half // groups
    # Each group holds [first channels of its pairs | second channels]: both halves use the pair's angle.
    grouped = angles.view(N, groups, 1, per_group).expand(N, groups, 2, per_group)
    cos = grouped.cos().reshape(N, 2 * half)
    sign = torch.ones(groups, 2, per_group, device=angles.device)
    sign[:, 0] = -1  # the first channel of a pair receives -x[second] * sin
    sin = (grouped.sin() * sign).reshape(N, 2 * half)
    return RopeTables(cos[:, None].to(dtype), sin[:, None].to(dtype), groups)


def grid_rope_tables(
    grid_h: int,
    grid_w: int,
    num_special: int,
    head_dim: int,
    base: float,
    dtype: torch.dtype,
    device: torch.device,
) -> RopeTables:
    """VGGT's 2-D RoPE for ``num_special`` leading tokens and a row-major ``grid_h x grid_w`` patch grid.

    Patch (y, x) has integer position (y + 1, x + 1) and the special tokens (camera, registers) position (0, 0),
    the identity rotation. The first half of each head turns with the row, the second with the column; within a
    half of d channels, pair i turns by position * base^(-2i/d).

    Returns:
        Tables for (num_special + grid_h * grid_w) tokens, float32 maths cast to ``dtype``.
    """
    d = head_dim // 2
    inv_freq = 1.0 / base ** (torch.arange(0, d, 2, device=device).float() / d)  # (d/2,)
    rows = torch.arange(grid_h, device=device).repeat_interleave(grid_w) + 1
    cols = torch.arange(grid_w, device=device).repeat(grid_h) + 1
    special = torch.zeros(num_special, dtype=rows.dtype, device=device)
    rows, cols = torch.cat([special, rows]).float(), torch.cat([special, cols]).float()
    angles = torch.cat([torch.outer(rows, inv_freq), torch.outer(cols, inv_freq)], dim=-1)
    return rope_tables(angles, groups=2, dtype=dtype)


def apply_rope(x: Tensor, tables: RopeTables, in_place: bool = False) -> Tensor:
    """Rotate x (..., N, heads, D) by the tables of its N tokens.

    ``in_place`` overwrites x (x must not be needed elsewhere, e.g. by autograd) and returns it.
    """
    g = tables.groups
    rotated = x.unflatten(-1, (g, 2, x.shape[-1] // (2 * g))).flip(-2).flatten(-3)  # the pair partners
    if not in_place:
        return x * tables.cos + rotated * tables.sin_signed
    x.mul_(tables.cos)
    return x.add_(rotated.mul_(tables.sin_signed))
