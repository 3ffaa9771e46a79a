"""The transformer block against a plain transcription of its definition, in every execution setting."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vggtkit.layers import Block, grid_rope_tables
from vggtkit.layers.attention import MaskedBiasLinear
from vggtkit.layers.rope import RopeTables


def rotate_pairs(x: torch.Tensor, tables: RopeTables) -> torch.Tensor:
    """x (B, heads, N, D) rotated pair by pair, written out from the definition (not the library's layout)."""
    D = x.shape[-1]
    per_group = D // (2 * tables.groups)
    cos, sin = tables.cos[:, 0], tables.sin_signed[:, 0].abs() * torch.sign(tables.sin_signed[:, 0] + 0.0)
    out = x.clone()
    for g in range(tables.groups):
        for i in range(per_group):
            a, b = g * 2 * per_group + i, g * 2 * per_group + per_group + i
            c, s = cos[:, a], -sin[:, a]  # the table stores -sin on the first channel of a pair
            out[..., a] = x[..., a] * c - x[..., b] * s
            out[..., b] = x[..., b] * c + x[..., a] * s
    return out


def plain_block(block: Block, x: torch.Tensor, tables: RopeTables | None) -> torch.Tensor:
    """x + ls1(attn(norm1(x))), then + ls2(mlp(norm2(x))), with module calls only."""
    attn = block.attn
    B, N, C = x.shape
    h = block.norm1(x)
    bias = attn.qkv.effective_bias() if isinstance(attn.qkv, MaskedBiasLinear) else attn.qkv.bias
    qkv = F.linear(h, attn.qkv.weight, bias).reshape(B, N, 3, attn.num_heads, C // attn.num_heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    if tables is not None:
        q, k = rotate_pairs(q, tables), rotate_pairs(k, tables)
    out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C)
    x = x + block.ls1(attn.proj(out))
    return x + block.ls2(block.mlp.fc2(block.mlp.act(block.mlp.fc1(block.norm2(x)))))


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    block = Block(64, 4, 4.0, 0.01, qk_norm=True, bias_mask=True).eval()
    with torch.no_grad():
        for p in block.parameters():  # away from the initialisation, so that every parameter matters
            p.add_(torch.randn_like(p) * 0.1)
        block.attn.qkv.bias_mask.uniform_()
    tables = grid_rope_tables(3, 5, 5, 16, 100.0, torch.float32, torch.device("cpu")).repeat(3)
    x = torch.randn(2, 3 * 20, 64)
    with torch.no_grad():
        ref = plain_block(block, x, tables)
    return block, tables, x, ref


@pytest.mark.parametrize("token_chunk", [None, 17, 7, 1000])  # chunks that divide nothing, and one pass
@pytest.mark.parametrize("batch_chunk", [None, 1])
@pytest.mark.parametrize("in_place", [False, True])
def test_every_setting_computes_the_block(setup, token_chunk, batch_chunk, in_place):
    block, tables, x, ref = setup
    inp = x.clone()
    with torch.no_grad():
        out = block(inp, tables, token_chunk=token_chunk, batch_chunk=batch_chunk, in_place=in_place)
    torch.testing.assert_close(out, ref, rtol=2e-6, atol=2e-6)
    assert (out.data_ptr() == inp.data_ptr()) == in_place
    if not in_place:
        assert torch.equal(inp, x)


def test_out_of_place_block_backpropagates_through_chunks(setup):
    block, tables, x, _ = setup
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    plain_block(block, x1, tables).square().sum().backward()
    grad_plain = x1.grad.clone()
    block.zero_grad()
    block(x2, tables, token_chunk=13, batch_chunk=1).square().sum().backward()
    torch.testing.assert_close(x2.grad, grad_plain, rtol=1e-4, atol=1e-5)


def test_reduced_precision_keeps_the_stream_in_float32(setup):
    block, tables, x, ref = setup
    with torch.no_grad():
        out = block(x.clone(), tables, dtype=torch.bfloat16, token_chunk=17, in_place=True)
    assert out.dtype == torch.float32
    rel = ((out - ref).abs() / (ref.abs() + 1)).max()
    assert 0 < rel < 0.05


def test_the_declared_activation_is_used():
    torch.manual_seed(0)
    block = Block(32, 2, 2.0)
    block.mlp.act = torch.nn.ReLU()
    x = torch.randn(1, 5, 32)
    with torch.no_grad():
        torch.testing.assert_close(block(x), plain_block(block, x, None))
        torch.testing.assert_close(block(x.clone(), in_place=True), plain_block(block, x, None))
