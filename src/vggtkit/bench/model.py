"""Random-weight models for benchmarks, input sizes, and the FLOPs of a forward pass."""

from __future__ import annotations

import math

import torch

from vggtkit.models.vggt import VGGT, VGGTConfig


# ----------------------------------------------------------------------------- model and inputs
def random_model(config: VGGTConfig, seed: int = 0, device: str | torch.device = "cpu") -> torch.nn.Module:
    """A random-weight VGGT built on the meta device and filled cheaply (seconds, not minutes, for VGGT-1B).

    Matrices get uniform values in +-1/sqrt(fan_in) (tiled from one random block, so filling is a memory copy),
    LayerScale 0.01 (aggregator, heads) or 1 (DINOv2), norms weight 1 and bias 0, other vectors small values.
    """
    with torch.device("meta"):
        model = VGGT(config)
    model = model.to_empty(device=device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    block = (torch.rand(1 << 20, generator=gen) * 2 - 1).to(device)
    offset = 0
    with torch.no_grad():
        for name, param in model.named_parameters():
            flat = param.view(-1)
            if param.ndim >= 2:
                bound = 1.0 / math.sqrt(param[0].numel())
                for start in range(0, flat.numel(), block.numel()):
                    stop = min(start + block.numel(), flat.numel())
                    flat[start:stop].copy_(block.roll(offset)[: stop - start])
                    offset += 7919
                flat.mul_(bound)
            elif name.endswith("gamma"):
                param.fill_(1.0 if ".patch_embed." in name else 0.01)
            elif "norm" in name and name.endswith("weight"):
                param.fill_(1.0)
            elif "norm" in name and name.endswith("bias"):
                param.zero_()
            else:
                param.copy_(block[: flat.numel()].view_as(param) * 0.02)
    return model.eval()


def parse_size(text: str) -> tuple[int, int]:
    """'518x392' (width x height, as images are usually described) -> (height, width)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"image size must look like WIDTHxHEIGHT, e.g. 518x392, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"image size must be positive, got {text!r}")
    return h, w


# ----------------------------------------------------------------------------- FLOPs
def _block_flops(tokens: int, seq: int, dim: int, mlp_ratio: float) -> int:
    """Matrix products of one transformer block over ``tokens`` tokens in sequences of ``seq``."""
    hidden = int(dim * mlp_ratio)
    linear = 2 * tokens * (4 * dim * dim + 2 * dim * hidden)
    return linear + 4 * tokens * seq * dim


def _dpt_flops(c: VGGTConfig, H: int, W: int, feature_only: bool, down_ratio: int, features: int) -> int:
    """Convolutions of one DPT head on one frame."""
    p = c.patch_size
    gh, gw = H // p, W // p
    cin, oc, F = 2 * c.embed_dim, c.dpt_out_channels, features

    def conv(h: int, w: int, ci: int, co: int, k: int) -> int:
        return 2 * h * w * ci * co * k * k

    h4, w4 = (gh - 1) // 2 + 1, (gw - 1) // 2 + 1
    sizes = [(4 * gh, 4 * gw), (2 * gh, 2 * gw), (gh, gw), (h4, w4)]
    total = sum(conv(gh, gw, cin, o, 1) for o in oc)
    total += (
        2 * gh * gw * oc[0] * oc[0] * 16 + 2 * gh * gw * oc[1] * oc[1] * 4 + conv(h4, w4, oc[3], oc[3], 3)
    )
    total += sum(conv(h, w, o, F, 3) for (h, w), o in zip(sizes, oc, strict=True))
    # Each fusion block's 1x1 out_conv runs before its resize (vggtkit.layers.dpt).
    total += 2 * conv(*sizes[3], F, F, 3) + conv(*sizes[3], F, F, 1)  # refinenet4
    total += 4 * conv(*sizes[2], F, F, 3) + conv(*sizes[2], F, F, 1)  # refinenet3
    total += 4 * conv(*sizes[1], F, F, 3) + conv(*sizes[1], F, F, 1)  # refinenet2
    total += 4 * conv(*sizes[0], F, F, 3) + conv(*sizes[0], F, F, 1)  # refinenet1
    total += conv(8 * gh, 8 * gw, F, F if feature_only else F // 2, 3)
    if not feature_only:
        oh, ow = gh * p // down_ratio, gw * p // down_ratio
        total += conv(oh, ow, F // 2, 32, 3)
    return total


def forward_flops(config: VGGTConfig, B: int, S: int, H: int, W: int) -> dict[str, int]:
    """Multiply-add FLOPs (x2) of the matrix products and convolutions of one forward pass, per stage.

    Counts what ``torch.utils.flop_counter.FlopCounterMode`` counts (tests check the two agree), without the
    track head. The tiny output convolutions of the DPT heads (32 -> 2 or 4 channels) are included.
    """
    c = config
    p = c.patch_size
    g = (H // p) * (W // p)
    n = B * S
    P = c.patch_start_idx + g
    out: dict[str, int] = {}
    embed = 2 * n * g * c.embed_dim * 3 * p * p
    if c.patch_embed == "dinov2":
        T = 1 + c.num_register_tokens + g
        embed += c.patch_embed_depth * _block_flops(n * T, T, c.embed_dim, c.mlp_ratio)
    out["patch_embed"] = embed
    out["aggregator"] = c.depth * (
        _block_flops(n * P, P, c.embed_dim, c.mlp_ratio)
        + _block_flops(n * P, S * P, c.embed_dim, c.mlp_ratio)
    )
    if c.enable_camera:
        d = 2 * c.embed_dim
        per_iter = c.camera_trunk_depth * _block_flops(n, S, d, c.mlp_ratio)
        per_iter += 2 * n * (9 * d + d * 3 * d + d * (d // 2) + (d // 2) * 9)
        out["camera_head"] = 4 * per_iter
    for name, enabled, dim in (("depth_head", c.enable_depth, 2), ("point_head", c.enable_point, 4)):
        if enabled:
            out[name] = n * (_dpt_flops(c, H, W, False, 1, c.dpt_features) + 2 * H * W * 32 * dim)
    return out
