"""Fast inference path of the DPT head: the same function as ``DPTHead.forward``, leaner and quicker.

Differences from the reference (none changes the numbers beyond float32 rounding):
* frames run in chunks (any chunk size), and the outputs are written into preallocated float32 tensors;
* the position embedding is added in place from its two 1-D factors instead of a full (C, h, w) float64 grid;
* ReLUs and residual sums are in place, and every map is freed right after its last use;
* each fusion block's 1x1 output convolution runs before its bilinear upsampling (they commute);
* the convolutions run in the compute dtype and, optionally, channels-last (faster on CPUs, in bfloat16 much
  faster);
* reduced precision is explicit (no autocast): the convolutions and resampling run in ``dtype``; the LayerNorm and
  the output activations in float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vggtkit.models.heads.dpt import (
    FeatureFusionBlock,
    ResidualConvUnit,
    add_uv_position_embedding_,
    interpolate_bilinear,
)

if TYPE_CHECKING:
    from vggtkit.models.heads.dpt import DPTHead


class _Convs:
    """Runs a head's convolutions in ``dtype`` and, optionally, channels-last.

    Each weight is converted at its call and freed right after (no cache: a cached copy of a VGGT-1B DPT head
    would hold 128 MB, and converting costs about 1% of the convolution).
    """

    def __init__(self, dtype: torch.dtype, channels_last: bool) -> None:
        self.dtype = dtype
        self.channels_last = channels_last

    def _params(self, module: nn.Conv2d | nn.ConvTranspose2d) -> tuple[Tensor, Tensor | None]:
        memory_format = torch.channels_last if self.channels_last else torch.preserve_format
        weight = module.weight.to(self.dtype, memory_format=memory_format)
        bias = None if module.bias is None else module.bias.to(self.dtype)
        return weight, bias

    def __call__(self, module: nn.Module, x: Tensor) -> Tensor:
        if isinstance(module, nn.Identity):
            return x
        if isinstance(module, nn.Sequential):
            for layer in module:
                x = F.relu_(x) if isinstance(layer, nn.ReLU) else self(layer, x)
            return x
        if isinstance(module, nn.ConvTranspose2d):
            w, b = self._params(module)
            return F.conv_transpose2d(
                x, w, b, module.stride, module.padding, module.output_padding, module.groups, module.dilation
            )
        if isinstance(module, nn.Conv2d) and module.padding_mode == "zeros":
            w, b = self._params(module)
            return F.conv2d(x, w, b, module.stride, module.padding, module.dilation, module.groups)
        raise TypeError(f"the fast DPT path does not support {type(module).__name__}")


def _residual_conv_(conv: _Convs, unit: ResidualConvUnit, x: Tensor) -> Tensor:
    """``unit(x)``, consuming x: relu(x) + conv2(relu(conv1(relu(x))))."""
    x = F.relu_(x)
    return conv(unit.conv2, F.relu_(conv(unit.conv1, x))).add_(x)


def _fusion_(
    conv: _Convs, block: FeatureFusionBlock, x: Tensor, skip: Tensor | None, size: Sequence[int] | None
) -> Tensor:
    """``block(x, skip, size)``, consuming x and skip (x + r and r + x are the same sum).

    The 1x1 ``out_conv`` runs before the bilinear upsampling instead of after it: both are linear and the
    interpolation weights sum to one, so the result is the same up to rounding, for a quarter of the work and
    without a second full-size map.
    """
    if skip is not None:
        x = _residual_conv_(conv, block.resConfUnit1, skip).add_(x)
    x = _residual_conv_(conv, block.resConfUnit2, x)
    size = tuple(size) if size is not None else (x.shape[-2] * 2, x.shape[-1] * 2)
    if block.out_conv.kernel_size == (1, 1) and size[0] >= x.shape[-2] and size[1] >= x.shape[-1]:
        return interpolate_bilinear(conv(block.out_conv, x), size)
    return conv(block.out_conv, interpolate_bilinear(x, size))


def dpt_frames_fast(
    head: DPTHead, conv: _Convs, layers: Sequence[Tensor], image_hw: tuple[int, int], patch_start_idx: int
) -> Tensor:
    """``head.forward_frames`` on 4 tokens (N, P, C_in): the pre-activation map (or features) in ``conv.dtype``."""
    H, W = image_hw
    grid_h, grid_w = H // head.patch_size, W // head.patch_size
    aspect = W / H
    norm = head.norm
    feats = []
    for k, tokens in enumerate(layers):
        x = F.layer_norm(tokens[:, patch_start_idx:].float(), norm.normalized_shape, norm.weight.float(),
                         norm.bias.float(), norm.eps).to(conv.dtype)  # fmt: skip
        x = x.view(x.shape[0], grid_h, grid_w, x.shape[-1]).permute(0, 3, 1, 2)  # channels-last memory
        if not conv.channels_last:
            x = x.contiguous()
        x = conv(head.projects[k], x)
        if head.pos_embed:
            add_uv_position_embedding_(x, aspect)
        feats.append(conv(head.resize_layers[k], x))
        del x
    s = head.scratch
    rn = [conv(getattr(s, f"layer{i + 1}_rn"), f) for i, f in enumerate(feats)]
    feats.clear()
    out = _fusion_(conv, s.refinenet4, rn.pop(), None, rn[2].shape[2:])
    out = _fusion_(conv, s.refinenet3, out, rn.pop(), rn[1].shape[2:])
    out = _fusion_(conv, s.refinenet2, out, rn.pop(), rn[0].shape[2:])
    out = conv(s.output_conv1, _fusion_(conv, s.refinenet1, out, rn.pop(), None))
    out_hw = (
        int(grid_h * head.patch_size / head.down_ratio),
        int(grid_w * head.patch_size / head.down_ratio),
    )
    out = interpolate_bilinear(out, out_hw)
    if head.pos_embed:
        add_uv_position_embedding_(out, aspect)
    if head.feature_only:
        return out
    return conv(s.output_conv2, out)


def dpt_forward_fast(
    head: DPTHead,
    aggregated_tokens_list: Sequence[Tensor | None],
    images_shape: Sequence[int],
    patch_start_idx: int,
    frames_chunk_size: int,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Inference-only ``head.forward`` (the module docstring lists the differences).

    Args:
        aggregated_tokens_list: aggregator outputs (B, S, P, C_in) of any float dtype, at least at
            ``head.intermediate_layer_idx``.
        images_shape: (B, S, 3, H, W).
        frames_chunk_size: frames (over all sequences) per pass.
        dtype: precision of the convolutions.
        channels_last: run the convolutions channels-last.

    Returns:
        As ``head.forward``, in float32.
    """
    B, S, _, H, W = images_shape
    layers = [aggregated_tokens_list[i].flatten(0, 1) for i in head.intermediate_layer_idx]
    n = B * S
    device = layers[0].device
    conv = _Convs(dtype, channels_last)
    values: Tensor | None = None
    conf: Tensor | None = None
    for f0 in range(0, n, frames_chunk_size):
        f1 = min(f0 + frames_chunk_size, n)
        out = dpt_frames_fast(head, conv, [t[f0:f1] for t in layers], (H, W), patch_start_idx)
        if head.feature_only:
            if values is None:
                values = torch.empty(n, *out.shape[1:], device=device, dtype=torch.float32)
            values[f0:f1] = out
            continue
        vals, cf = head.activate(out.float())
        del out
        if values is None:
            values = torch.empty(n, *vals.shape[1:], device=device, dtype=torch.float32)
            conf = torch.empty(n, *cf.shape[1:], device=device, dtype=torch.float32)
        values[f0:f1], conf[f0:f1] = vals, cf
    if head.feature_only:
        return values.unflatten(0, (B, S))
    return values.unflatten(0, (B, S)), conf.unflatten(0, (B, S))
