"""Random-weight models of both families for benchmarks, their named configurations, input sizes, and the FLOPs
of a forward pass."""

from __future__ import annotations

import math

import torch
from torch import nn

from vggtkit.models.omega import VGGTOmegaConfig, omega_preset_config
from vggtkit.models.omega.config import HEAD_MLP_RATIO
from vggtkit.models.registry import family_of_config
from vggtkit.models.vggt import VGGTConfig
from vggtkit.models.vggt.config import preset_config

# Benchmark configuration names -> (family, preset of that family).
BENCH_CONFIGS: dict[str, tuple[str, str]] = {
    "tiny": ("vggt", "tiny"),
    "1b": ("vggt", "1b"),
    "omega-tiny": ("omega", "tiny"),
    "omega-1b": ("omega", "1b-512"),
}
ModelConfig = VGGTConfig | VGGTOmegaConfig


def bench_config(name: str) -> ModelConfig:
    """The configuration of a benchmark name (see ``BENCH_CONFIGS``).

    Raises:
        ValueError: an unknown name.
    """
    if name not in BENCH_CONFIGS:
        raise ValueError(f"unknown benchmark configuration {name!r}; known: {', '.join(BENCH_CONFIGS)}")
    family, preset = BENCH_CONFIGS[name]
    return omega_preset_config(preset) if family == "omega" else preset_config(preset)


def check_image_size(config: ModelConfig, height: int, width: int) -> None:
    """Raise ValueError when the model cannot take ``height`` x ``width`` frames: VGGT needs multiples of its patch
    size, VGGT-Omega at least one patch (it ignores the rows and columns beyond the last whole patch)."""
    p = config.patch_size
    if isinstance(config, VGGTConfig) and (height % p or width % p):
        raise ValueError(
            f"image size {width}x{height} is not a multiple of the patch size {p} (e.g. 518x392)"
        )
    if min(height, width) < p:
        raise ValueError(f"image size {width}x{height} holds no whole {p}x{p} patch")


def head_stages(config: ModelConfig) -> tuple[str, ...]:
    """The benchmark stages of the heads a forward pass without query points runs, in their order."""
    if isinstance(config, VGGTOmegaConfig):
        enabled = (config.enable_camera, config.enable_depth, config.enable_alignment)
        names = ("camera_head", "depth_head", "text_head")
    else:
        enabled = (config.enable_camera, config.enable_depth, config.enable_point)
        names = ("camera_head", "depth_head", "point_head")
    return tuple(name for name, on in zip(names, enabled, strict=True) if on)


# ----------------------------------------------------------------------------- model and inputs
def random_model(config: ModelConfig, seed: int = 0, device: str | torch.device = "cpu") -> torch.nn.Module:
    """A random-weight model of the configuration's family, built on the meta device and filled cheaply (seconds,
    not minutes, for the 1B models).

    Matrices get uniform values in +-1/sqrt(fan_in) (tiled from one random block, so filling is a memory copy),
    LayerScale 0.01 (aggregator, heads) or 1 (the patch embedder), LayerNorms weight 1 and bias 0, other vectors
    small values; buffers (bias masks, RoPE periods) their initial values.
    """
    with torch.device("meta"):
        model = family_of_config(config).model_class(config)
    model = model.to_empty(device=device)
    for module in model.modules():
        reset = getattr(module, "reset_buffers", None)
        if reset is not None:
            reset()
    norms = {
        f"{name}.{p}"
        for name, m in model.named_modules()
        if isinstance(m, nn.LayerNorm)
        for p in ("weight", "bias")
    }
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
            elif name in norms or "norm" in name:
                param.fill_(1.0 if name.endswith("weight") else 0.0)
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


def _conv(h: int, w: int, ci: int, co: int, k: int) -> int:
    return 2 * h * w * ci * co * k * k


def _fusion_flops(p: int, cin: int, oc: tuple[int, ...], F: int, H: int, W: int) -> int:
    """Convolutions of the shared DPT fusion (:class:`vggtkit.layers.dpt.DPTFusion`) on one frame, up to
    refinenet1 at 4x the patch grid."""
    gh, gw = H // p, W // p
    h4, w4 = (gh - 1) // 2 + 1, (gw - 1) // 2 + 1
    sizes = [(4 * gh, 4 * gw), (2 * gh, 2 * gw), (gh, gw), (h4, w4)]
    total = sum(_conv(gh, gw, cin, o, 1) for o in oc)
    total += (
        2 * gh * gw * oc[0] * oc[0] * 16 + 2 * gh * gw * oc[1] * oc[1] * 4 + _conv(h4, w4, oc[3], oc[3], 3)
    )
    total += sum(_conv(h, w, o, F, 3) for (h, w), o in zip(sizes, oc, strict=True))
    # Each fusion block's 1x1 out_conv runs before its resize (vggtkit.layers.dpt).
    total += 2 * _conv(*sizes[3], F, F, 3) + _conv(*sizes[3], F, F, 1)  # refinenet4
    total += 4 * _conv(*sizes[2], F, F, 3) + _conv(*sizes[2], F, F, 1)  # refinenet3
    total += 4 * _conv(*sizes[1], F, F, 3) + _conv(*sizes[1], F, F, 1)  # refinenet2
    total += 4 * _conv(*sizes[0], F, F, 3) + _conv(*sizes[0], F, F, 1)  # refinenet1
    return total


def _dpt_flops(c: VGGTConfig, H: int, W: int, feature_only: bool, down_ratio: int, features: int) -> int:
    """Convolutions of one VGGT DPT head on one frame."""
    p = c.patch_size
    gh, gw = H // p, W // p
    F = features
    total = _fusion_flops(p, 2 * c.embed_dim, c.dpt_out_channels, F, H, W)
    total += _conv(8 * gh, 8 * gw, F, F if feature_only else F // 2, 3)
    if not feature_only:
        oh, ow = gh * p // down_ratio, gw * p // down_ratio
        total += _conv(oh, ow, F // 2, 32, 3)
    return total


def forward_flops(config: ModelConfig, B: int, S: int, H: int, W: int) -> dict[str, int]:
    """Multiply-add FLOPs (x2) of the matrix products and convolutions of one forward pass, per stage.

    Counts what ``torch.utils.flop_counter.FlopCounterMode`` counts (tests check the two agree), without VGGT's
    track head. The tiny output convolutions of the dense heads are included.
    """
    if isinstance(config, VGGTOmegaConfig):
        return _omega_flops(config, B, S, H, W)
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


def _omega_flops(c: VGGTOmegaConfig, B: int, S: int, H: int, W: int) -> dict[str, int]:
    """:func:`forward_flops` of VGGT-Omega: register-only inter-frame blocks see the camera and register tokens."""
    p, C = c.patch_size, c.embed_dim
    gh, gw = H // p, W // p
    g, n, psi = gh * gw, B * S, c.patch_token_start
    P = psi + g
    T = 1 + c.patch_embed_n_storage_tokens + g
    out = {
        "patch_embed": 2 * n * g * C * 3 * p * p
        + c.patch_embed_depth * _block_flops(n * T, T, C, c.patch_embed_ffn_ratio)
    }
    inter = [
        _block_flops(n * psi, S * psi, C, c.mlp_ratio)
        if i in c.register_attention_block_indices
        else _block_flops(n * P, S * P, C, c.mlp_ratio)
        for i in range(c.depth)
    ]
    out["aggregator"] = c.depth * _block_flops(n * P, P, C, c.mlp_ratio) + sum(inter)
    d = 2 * C
    if c.enable_camera:
        out["camera_head"] = c.camera_trunk_depth * _block_flops(n * psi, S * psi, d, HEAD_MLP_RATIO)
        out["camera_head"] += 2 * n * (d * (d // 2) + (d // 2) * 9)
    if c.enable_depth:
        r2 = (p // 4) ** 2
        fusion = _fusion_flops(p, d, c.dense_out_channels, c.dense_features, H, W)
        out["depth_head"] = n * (fusion + 2 * _conv(4 * gh, 4 * gw, c.dense_features, r2, 1))
    if c.enable_alignment:
        seq = 1 + S * psi
        out["text_head"] = c.text_readout_depth * _block_flops(B * seq, seq, d, HEAD_MLP_RATIO)
        out["text_head"] += 2 * B * (d * (d // 2) + (d // 2) * d)
    return out
