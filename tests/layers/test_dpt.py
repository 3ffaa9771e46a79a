"""The DPT head against a plain transcription of the official head, in every execution setting."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vggtkit.layers.dpt import DenseRun, add_uv_position_embedding_, sincos_embed_1d, uv_axes
from vggtkit.models.vggt.heads.dpt import DPTHead


def full_grid_embedding(h: int, w: int, C: int, aspect: float) -> torch.Tensor:
    """(C, h, w) [sin u | cos u | sin v | cos v] of the uv grid, built as a whole grid."""
    xs, ys = uv_axes(w, h, aspect, torch.float32, torch.device("cpu"))
    uu, vv = torch.meshgrid(xs, ys, indexing="xy")
    grid = torch.stack([uu, vv], dim=-1).reshape(-1, 2)
    emb = torch.cat([sincos_embed_1d(grid[:, 0], C // 2, 100), sincos_embed_1d(grid[:, 1], C // 2, 100)], -1)
    return emb.reshape(h, w, C).permute(2, 0, 1)


def residual_unit(unit, x):
    x = F.relu(x)  # the released code's in-place ReLU: the skip carries relu(x)
    return x + unit.conv2(F.relu(unit.conv1(x)))


def fusion(block, x, skip=None, size=None):
    if skip is not None:
        x = x + residual_unit(block.resConfUnit1, skip)
    x = residual_unit(block.resConfUnit2, x)
    size = size or (x.shape[-2] * 2, x.shape[-1] * 2)
    return block.out_conv(F.interpolate(x, size=size, mode="bilinear", align_corners=True))


def plain_dpt(head: DPTHead, tokens: list[torch.Tensor], H: int, W: int, psi: int):
    """The official DPT forward on all frames at once, with module calls only."""
    gh, gw = H // head.patch_size, W // head.patch_size
    feats = []
    for k, t in enumerate(tokens):
        x = head.norm(t.flatten(0, 1)[:, psi:])
        x = head.projects[k](x.transpose(1, 2).reshape(x.shape[0], -1, gh, gw))
        if head.pos_embed:
            x = x + 0.1 * full_grid_embedding(gh, gw, x.shape[1], W / H)[None]
        feats.append(head.resize_layers[k](x))
    s = head.scratch
    l1, l2, l3, l4 = (getattr(s, f"layer{i}_rn")(f) for i, f in enumerate(feats, start=1))
    out = fusion(s.refinenet4, l4, size=l3.shape[2:])
    out = fusion(s.refinenet3, out, l3, size=l2.shape[2:])
    out = fusion(s.refinenet2, out, l2, size=l1.shape[2:])
    out = s.output_conv1(fusion(s.refinenet1, out, l1))
    out_hw = (int(gh * head.patch_size / head.down_ratio), int(gw * head.patch_size / head.down_ratio))
    out = F.interpolate(out, size=out_hw, mode="bilinear", align_corners=True)
    if head.pos_embed:
        out = out + 0.1 * full_grid_embedding(*out_hw, out.shape[1], W / H)[None]
    if head.feature_only:
        return (out.unflatten(0, tokens[0].shape[:2]),)
    values, conf = head.activate(s.output_conv2(out))
    return values.unflatten(0, tokens[0].shape[:2]), conf.unflatten(0, tokens[0].shape[:2])


@pytest.mark.parametrize("hw", [(70, 98), (84, 42)])
@pytest.mark.parametrize("feature_only", [False, True])
def test_every_setting_computes_the_official_head(hw, feature_only):
    torch.manual_seed(0)
    H, W = hw
    extra = {"feature_only": True, "down_ratio": 2, "pos_embed": False} if feature_only else {}
    head = DPTHead(32, patch_size=14, features=16, out_channels=(8, 16, 24, 24),
                   intermediate_layer_idx=(0, 1, 2, 3), **extra).eval()  # fmt: skip
    with torch.no_grad():
        for p in head.parameters():  # away from the initialisation, so that every layer matters
            p.add_(torch.randn_like(p) * 0.05)
    tokens = [torch.randn(1, 3, 5 + (H // 14) * (W // 14), 32) for _ in range(4)]
    images = torch.zeros(1, 3, 3, H, W)
    with torch.no_grad():
        ref = plain_dpt(head, tokens, H, W, 5)
        for run in (
            DenseRun(),
            DenseRun(frames_chunk=2, channels_last=True),
            DenseRun(frames_chunk=1, band_rows=1),
            DenseRun(frames_chunk=2, band_rows=7, channels_last=True),  # bands that divide no height
            DenseRun(frames_chunk=None, band_rows=11),
        ):
            out = head(tokens, images, 5, run)
            out = out if isinstance(out, tuple) else (out,)
            for a, b in zip(out, ref, strict=True):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=str(run))


def test_position_embedding_of_a_band_is_the_band_of_the_embedding():
    x = torch.randn(2, 8, 9, 10)
    whole = add_uv_position_embedding_(x.clone(), 1.5)
    band = add_uv_position_embedding_(x[:, :, 3:7].clone(), 1.5, rows=(3, 9))
    assert torch.equal(band, whole[:, :, 3:7])


def test_separable_position_embedding_equals_the_full_grid():
    x = torch.randn(2, 8, 6, 10)
    expected = x + 0.1 * full_grid_embedding(6, 10, 8, 140 / 84)[None]
    torch.testing.assert_close(add_uv_position_embedding_(x.clone(), 140 / 84), expected, rtol=0, atol=1e-7)
