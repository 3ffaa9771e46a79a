"""2-D rotary position embedding used by the frame and global attention blocks."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn


def patch_positions(
    num_frames: int, grid_h: int, grid_w: int, num_special: int, device: torch.device | str | None = None
) -> Tensor:
    """Integer (row, col) positions of every token of a frame, repeated for ``num_frames`` frames.

    Patch (y, x) gets (y + 1, x + 1); the ``num_special`` leading camera/register tokens get (0, 0), which
    makes the rotation the identity for them.

    Returns:
        (num_frames, num_special + grid_h * grid_w, 2) int64.
    """
    ys = torch.arange(grid_h, device=device)
    xs = torch.arange(grid_w, device=device)
    grid = torch.cartesian_prod(ys, xs) + 1  # row-major, (h*w, 2) as (y, x)
    special = torch.zeros(num_special, 2, dtype=grid.dtype, device=device)
    pos = torch.cat([special, grid], dim=0)
    return pos.unsqueeze(0).expand(num_frames, -1, -1)


class RotaryPositionEmbedding2D(nn.Module):
    """Rotates the first half of each head's channels by the row position and the second half by the column.

    Inside each half of d channels, channel i pairs with channel i + d/2 (rotate-half layout) and is rotated by
    angle pos * base^(-2i/d).
    """

    def __init__(self, base: float = 100.0) -> None:
        super().__init__()
        self.base = float(base)
        self._cache: dict[tuple, tuple[Tensor, Tensor]] = {}

    def _tables(
        self, dim: int, length: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[Tensor, Tensor]:
        key = (dim, length, device, dtype)
        if key not in self._cache:
            inv_freq = 1.0 / self.base ** (torch.arange(0, dim, 2, device=device).float() / dim)
            angles = torch.outer(torch.arange(length, device=device, dtype=inv_freq.dtype), inv_freq).to(
                dtype
            )
            angles = torch.cat([angles, angles], dim=-1)
            self._cache[key] = (angles.cos().to(dtype), angles.sin().to(dtype))
        return self._cache[key]

    @staticmethod
    def _rotate_1d(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        half = x.shape[-1] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * cos + rotated * sin

    def forward(self, x: Tensor, pos: Tensor) -> Tensor:
        """x: (B, heads, N, D); pos: (B, N, 2) integer (row, col). Returns x rotated, same shape."""
        dim = x.shape[-1] // 2
        cos_table, sin_table = self._tables(dim, int(pos.max()) + 1, x.device, x.dtype)
        rows, cols = x.chunk(2, dim=-1)
        # (B, N, d) gathered tables, broadcast over heads.
        rows = self._rotate_1d(rows, cos_table[pos[..., 0]][:, None], sin_table[pos[..., 0]][:, None])
        cols = self._rotate_1d(cols, cos_table[pos[..., 1]][:, None], sin_table[pos[..., 1]][:, None])
        return torch.cat([rows, cols], dim=-1)


class RopeTables(NamedTuple):
    """Precomputed rotation of a token sequence for the fast path (see :func:`rope_tables`).

    cos, sin_signed: (N, 1, D) broadcast over (..., N, heads, D); ``sin_signed`` carries the rotate-half sign.
    """

    cos: Tensor
    sin_signed: Tensor

    def repeat(self, times: int) -> RopeTables:
        """Tables of a sequence made of ``times`` copies of this one (global attention over frames)."""
        return RopeTables(self.cos.repeat(times, 1, 1), self.sin_signed.repeat(times, 1, 1))

    def slice(self, start: int, stop: int) -> RopeTables:
        return RopeTables(self.cos[start:stop], self.sin_signed[start:stop])


def rope_tables(
    rope: RotaryPositionEmbedding2D, pos: Tensor, head_dim: int, dtype: torch.dtype
) -> RopeTables:
    """Gather the rotation of every token once, for all heads and blocks.

    Same numbers as :meth:`RotaryPositionEmbedding2D.forward` in float32 (the tables are always computed in
    float32 and then cast, which is more accurate than the reference in reduced precision).

    Args:
        pos: (N, 2) integer (row, col) positions of one sequence.
        head_dim: channels per head D (a multiple of 4).
    """
    dim = head_dim // 2
    cos_table, sin_table = rope._tables(dim, int(pos.max()) + 1, pos.device, torch.float32)
    sign = torch.ones(dim, device=pos.device)
    sign[: dim // 2] = -1  # rotate-half: channel i < dim/2 pairs with -x[i + dim/2]
    cos = torch.cat([cos_table[pos[:, 0]], cos_table[pos[:, 1]]], dim=-1)
    sin = torch.cat([sin_table[pos[:, 0]] * sign, sin_table[pos[:, 1]] * sign], dim=-1)
    return RopeTables(cos[:, None].to(dtype), sin[:, None].to(dtype))


def apply_rope_(x: Tensor, tables: RopeTables) -> Tensor:
    """Rotate x (..., N, heads, D) in place with precomputed tables; returns x.

    Each axis (row, col) owns half of the D channels, and inside it the two quarters swap places (rotate-half).
    """
    rotated = x.unflatten(-1, (2, 2, x.shape[-1] // 4)).flip(-2).flatten(-3)
    x.mul_(tables.cos)
    x.add_(rotated.mul_(tables.sin_signed))
    return x
