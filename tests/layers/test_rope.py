"""RoPE tables against the definition of VGGT's 2-D rotary embedding (spec section 3)."""

from __future__ import annotations

import math

import torch

from vggtkit.layers.rope import apply_rope, grid_rope_tables, rope_tables


def test_vggt_grid_rope_follows_the_definition():
    grid_h, grid_w, special, D, base = 3, 4, 2, 16, 100.0
    tables = grid_rope_tables(grid_h, grid_w, special, D, base, torch.float32, torch.device("cpu"))
    x = torch.randn(1, special + grid_h * grid_w, 2, D)  # (B, N, heads, D)
    out = apply_rope(x, tables)
    d = D // 2
    for t in range(x.shape[1]):
        row, col = (0, 0) if t < special else divmod(t - special, grid_w)
        row, col = (row + 1, col + 1) if t >= special else (0, 0)
        for axis, pos in enumerate((row, col)):
            part = x[0, t, :, axis * d : (axis + 1) * d]
            for i in range(d // 2):
                angle = pos * base ** (-2 * i / d)
                c, s = math.cos(angle), math.sin(angle)
                a, b = part[:, i], part[:, i + d // 2]
                torch.testing.assert_close(out[0, t, :, axis * d + i], a * c - b * s, rtol=1e-5, atol=1e-6)
                torch.testing.assert_close(
                    out[0, t, :, axis * d + i + d // 2], b * c + a * s, rtol=1e-5, atol=1e-6
                )
    assert torch.equal(out[0, :special], x[0, :special])  # special tokens: the identity rotation


def test_one_group_rotates_the_two_halves_of_a_head():
    angles = torch.tensor([[0.3, 1.2], [2.0, -0.5]])  # two tokens, D = 4
    tables = rope_tables(angles, groups=1)
    x = torch.randn(2, 1, 4)
    out = apply_rope(x, tables)
    for t in range(2):
        for j in range(2):
            c, s = math.cos(angles[t, j]), math.sin(angles[t, j])
            torch.testing.assert_close(out[t, 0, j], x[t, 0, j] * c - x[t, 0, j + 2] * s)
            torch.testing.assert_close(out[t, 0, j + 2], x[t, 0, j + 2] * c + x[t, 0, j] * s)


def test_in_place_equals_out_of_place_and_slices_repeat():
    tables = grid_rope_tables(2, 3, 1, 8, 100.0, torch.float32, torch.device("cpu"))
    x = torch.randn(2, 7, 3, 8)
    assert torch.equal(apply_rope(x.clone(), tables, in_place=True), apply_rope(x, tables))
    twice = tables.repeat(2)
    assert torch.equal(twice.slice(7, 14).cos, tables.cos)
