"""Fast inference path of the DPT head: the same function as ``DPTHead.forward``, leaner and quicker.

Differences from the reference (none changes the numbers beyond float32 rounding):
* frames run in chunks (any chunk size), and the outputs are written into preallocated float32 tensors;
* the position embedding is added in place from its two 1-D factors instead of a full (C, h, w) float64 grid;
* ReLUs and residual sums are in place, and every map is freed right after its last use;
* each fusion block's 1x1 output convolution runs before its bilinear upsampling (they commute);
* the stages after the last fusion block's 1x1 convolution (its x2 upsampling, ``output_conv1``, the resize to
  the image size, the position embedding, ``output_conv2`` and the activations) run in bands of output rows with
  the convolutions' halo rows, so no map of the whole image at 8x the patch grid or at full size is held;
* a convolution with fewer output pixels than output channels runs as a matrix product with its unfolded input;
* the convolutions run in the compute dtype and, optionally, channels-last (faster on CPUs, in bfloat16 much
  faster);
* reduced precision is explicit (no autocast): the convolutions and resampling run in ``dtype``; the LayerNorm and
  the output activations in float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vggtkit.models.vggt.heads.dpt import (
    FeatureFusionBlock,
    ResidualConvUnit,
    add_uv_position_embedding_,
    interpolate_bilinear,
)
from vggtkit.utils.memory import release_free_memory

if TYPE_CHECKING:
    from vggtkit.models.vggt.heads.dpt import DPTHead


class _Convs:
    """Runs a head's convolutions in ``dtype`` and, optionally, channels-last.

    Each weight is converted at its call and freed right after (no cache: a cached copy of a VGGT-1B DPT head
    would hold 128 MB, and converting costs about 1% of the convolution).
    """

    def __init__(self, dtype: torch.dtype, channels_last: bool) -> None:
        self.dtype = dtype
        self.channels_last = channels_last

    def _params(self, module: nn.Conv2d | nn.ConvTranspose2d) -> tuple[Tensor, Tensor | None]:
        # The weight keeps its layout: a channels-last input alone selects the channels-last kernels, which
        # reorder the weight themselves (a channels-last copy here measured no faster and cost one more copy of
        # the weight: 38 MB for the largest VGGT-1B convolution).
        weight = module.weight.to(self.dtype)
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
            out_hw = [
                (size + 2 * p - d * (k - 1) - 1) // s + 1
                for size, k, p, d, s in zip(
                    x.shape[-2:],
                    module.kernel_size,
                    module.padding,
                    module.dilation,
                    module.stride,
                    strict=True,
                )
            ]
            if module.groups == 1 and module.out_channels > x.shape[0] * out_hw[0] * out_hw[1]:
                return self._conv_as_product(module, x, w, b, out_hw)
            return F.conv2d(x, w, b, module.stride, module.padding, module.dilation, module.groups)
        raise TypeError(f"the fast DPT path does not support {type(module).__name__}")

    def _conv_as_product(
        self, module: nn.Conv2d, x: Tensor, w: Tensor, b: Tensor | None, out_hw: list[int]
    ) -> Tensor:
        """``conv2d`` as weight (C_out, C_in*k*k) @ unfolded input, for maps with fewer output pixels than output
        channels (VGGT-1B's 1024-channel stride-2 convolution gives 19x14): the weight is then the largest
        operand, and the convolution kernels would first reorder it, in two copies (75 MB), for less work
        than that."""
        cols = F.unfold(
            x, module.kernel_size, module.dilation, module.padding, module.stride
        )  # (N, C_in*k*k, L)
        out = torch.matmul(w.view(w.shape[0], -1), cols)
        if b is not None:
            out += b[:, None]
        out = out.view(x.shape[0], -1, *out_hw)
        return out.contiguous(memory_format=torch.channels_last) if self.channels_last else out


def _residual_conv_(conv: _Convs, unit: ResidualConvUnit, x: Tensor) -> Tensor:
    """``unit(x)``, consuming x: relu(x) + conv2(relu(conv1(relu(x))))."""
    x = F.relu_(x)
    return conv(unit.conv2, F.relu_(conv(unit.conv1, x))).add_(x)


def _fusion_(conv: _Convs, block: FeatureFusionBlock, x: Tensor, skip: Tensor | None) -> Tensor:
    """``block(x, skip, size)`` without its resize, consuming x and skip (x + r and r + x are the same sum).

    The 1x1 ``out_conv`` runs here, before the bilinear resize that the caller applies, instead of after it: both
    are linear and the interpolation weights sum to one, so the result is the same up to rounding, for a quarter
    of the work and without a second full-size map.
    """
    if block.out_conv.kernel_size != (1, 1):
        raise TypeError("the fast DPT path needs 1x1 out_conv layers in the fusion blocks")
    if skip is not None:
        x = _residual_conv_(conv, block.resConfUnit1, skip).add_(x)
    return conv(block.out_conv, _residual_conv_(conv, block.resConfUnit2, x))


def _dpt_trunk(
    head: DPTHead, conv: _Convs, layers: Sequence[Tensor], image_hw: tuple[int, int], patch_start_idx: int
) -> Tensor:
    """The head on 4 tokens (N, P, C_in) up to refinenet1's x2 resize: (N, F, 4h, 4w) for an h x w patch grid."""
    H, W = image_hw
    grid_h, grid_w = H // head.patch_size, W // head.patch_size
    norm, s = head.norm, head.scratch
    rn = []
    for k, tokens in enumerate(layers):
        x = F.layer_norm(tokens[:, patch_start_idx:].float(), norm.normalized_shape, norm.weight.float(),
                         norm.bias.float(), norm.eps).to(conv.dtype)  # fmt: skip
        x = x.view(x.shape[0], grid_h, grid_w, x.shape[-1]).permute(0, 3, 1, 2)  # channels-last memory
        if not conv.channels_last:
            x = x.contiguous()
        x = conv(head.projects[k], x)
        if head.pos_embed:
            add_uv_position_embedding_(x, W / H)
        # Straight to the 3x3 *_rn convolution: only the F-channel maps are kept, not the wider resized ones.
        rn.append(conv(getattr(s, f"layer{k + 1}_rn"), conv(head.resize_layers[k], x)))
        del x
    out = interpolate_bilinear(_fusion_(conv, s.refinenet4, rn.pop(), None), rn[2].shape[2:])
    out = interpolate_bilinear(_fusion_(conv, s.refinenet3, out, rn.pop()), rn[1].shape[2:])
    out = interpolate_bilinear(_fusion_(conv, s.refinenet2, out, rn.pop()), rn[0].shape[2:])
    return _fusion_(conv, s.refinenet1, out, rn.pop())


# ----------------------------------------------------------------------------- the full-resolution tail, in bands
class _Taps(NamedTuple):
    """Bilinear (align_corners) resize of rows: output rows ``rows`` read input rows ``span``, row i from
    i0[i] and i1[i] with weights 1 - lam[i] and lam[i]."""

    rows: tuple[int, int]
    span: tuple[int, int]
    i0: Tensor
    i1: Tensor
    lam: Tensor
    whole: bool  # all output rows from all input rows: the plain resize


def _taps(rows: tuple[int, int], n_in: int, n_out: int, device: torch.device) -> _Taps:
    """The taps of output rows [r0, r1) of a resize from n_in to n_out rows, computed as PyTorch's kernel does
    (float32 source positions), so a band reproduces the rows of the whole resize."""
    scale = torch.tensor(n_in - 1, dtype=torch.float32) / (n_out - 1) if n_out > 1 else torch.tensor(0.0)
    src = torch.arange(*rows, dtype=torch.float32) * scale
    i0 = src.floor().long().clamp_(max=n_in - 1)
    lam = (src - i0).clamp_(0, 1)
    i1 = (i0 + 1).clamp_(max=n_in - 1)
    span = (int(i0[0]), int(i1[-1]) + 1)
    whole = rows == (0, n_out) and span == (0, n_in)
    return _Taps(rows, span, i0.to(device), i1.to(device), lam.to(device), whole)


def _resize_rows(x: Tensor, taps: _Taps, width: int, channels_last: bool) -> Tensor:
    """Rows ``taps.rows`` of the bilinear (align_corners) resize to ``width`` columns of a map; x (N, C, m, w)
    holds its rows ``taps.span``. Rows are interpolated first (on the narrower map), then columns."""
    if taps.whole:  # one band: the resize kernel itself (the gather below measured 30 % of a bfloat16 head)
        return interpolate_bilinear(x, (taps.rows[1], width))
    axis = 1 if channels_last else 2  # the row axis of the view the rows are gathered from
    rows = x.permute(0, 2, 3, 1) if channels_last else x  # gathering (N, m, w, C) rows keeps channels-last
    shift = taps.span[0]
    weight_shape = (-1,) + (1,) * (rows.dim() - axis - 1)
    lam = taps.lam.view(weight_shape)
    out = rows.index_select(axis, taps.i0 - shift).mul_(1 - lam)
    out.addcmul_(rows.index_select(axis, taps.i1 - shift), lam)
    if channels_last:
        out = out.permute(0, 3, 1, 2)
    return interpolate_bilinear(out, (out.shape[-2], width))  # rows map to themselves: columns only


def _halo(module: nn.Module) -> int:
    """Rows of context on each side that a stride-1 'same' convolution (or a stack of them) reads per output row."""
    if isinstance(module, nn.Sequential):
        return sum(_halo(layer) for layer in module)
    if isinstance(module, nn.Conv2d):
        k, p = module.kernel_size[0], module.padding[0]
        if module.stride[0] != 1 or module.dilation[0] != 1 or 2 * p != k - 1:
            raise TypeError(f"the banded DPT tail needs stride-1 'same' convolutions, got {module}")
        return p
    return 0


def _widen(rows: tuple[int, int], halo: int, n: int) -> tuple[int, int]:
    return max(rows[0] - halo, 0), min(rows[1] + halo, n)


def _crop(x: Tensor, have: tuple[int, int], want: tuple[int, int]) -> Tensor:
    """Rows ``want`` of a map whose rows ``have`` x (N, C, m, w) holds."""
    return x[:, :, want[0] - have[0] : want[1] - have[0]]


def _dpt_tail_rows(
    head: DPTHead, conv: _Convs, low: Tensor, rows: tuple[int, int], out_hw: tuple[int, int], aspect: float
) -> Tensor:
    """Rows [r0, r1) of the head's output from the trunk's map ``low`` (N, F, h, w): refinenet1's x2 resize,
    ``output_conv1``, the resize to ``out_hw``, the position embedding and, unless ``feature_only``,
    ``output_conv2``: (N, C_out, r1 - r0, out_hw[1]).

    Each stage computes the rows the next one reads, including the 3x3 convolutions' halo rows. A convolution
    sees zeros beyond the rows it is given, so the rows within its halo of a band edge are wrong unless the edge
    is the map's border; those rows are cropped. The band equals those rows of the whole map up to rounding.
    """
    s = head.scratch
    (h, w), (out_h, out_w) = low.shape[-2:], out_hw
    # The rows each stage needs, from the output back to ``low``.
    full = rows if head.feature_only else _widen(rows, _halo(s.output_conv2), out_h)
    to_full = _taps(full, 2 * h, out_h, low.device)
    mid = _widen(to_full.span, _halo(s.output_conv1), 2 * h)
    to_mid = _taps(mid, h, 2 * h, low.device)
    x = _resize_rows(low[:, :, slice(*to_mid.span)], to_mid, 2 * w, conv.channels_last)
    x = _crop(conv(s.output_conv1, x), mid, to_full.span)
    x = _resize_rows(x, to_full, out_w, conv.channels_last)
    if head.pos_embed:
        add_uv_position_embedding_(x, aspect, rows=(full[0], out_h))
    if head.feature_only:
        return x
    return _crop(conv(s.output_conv2, x), full, rows)


def dpt_forward_fast(
    head: DPTHead,
    aggregated_tokens_list: Sequence[Tensor | None],
    images_shape: Sequence[int],
    patch_start_idx: int,
    frames_chunk_size: int,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
    band_rows: int | None = None,
    release_memory: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Inference-only ``head.forward`` (the module docstring lists the differences).

    Args:
        aggregated_tokens_list: aggregator outputs (B, S, P, C_in) of any float dtype, at least at
            ``head.intermediate_layer_idx``.
        images_shape: (B, S, 3, H, W).
        frames_chunk_size: frames (over all sequences) per pass.
        dtype: precision of the convolutions.
        channels_last: run the convolutions channels-last.
        band_rows: output rows per pass of the full-resolution stages (None: all).
        release_memory: give freed heap pages back to the system before each pass and band (:mod:`vggtkit.utils.memory`).

    Returns:
        As ``head.forward``, in float32.
    """
    B, S, _, H, W = images_shape
    layers = [aggregated_tokens_list[i].flatten(0, 1) for i in head.intermediate_layer_idx]
    n = B * S
    device = layers[0].device
    conv = _Convs(dtype, channels_last)
    grid_h, grid_w = H // head.patch_size, W // head.patch_size
    out_h, out_w = (
        int(grid_h * head.patch_size / head.down_ratio),
        int(grid_w * head.patch_size / head.down_ratio),
    )
    band_rows = band_rows or out_h
    values: Tensor | None = None
    conf: Tensor | None = None
    for f0 in range(0, n, frames_chunk_size):
        f1 = min(f0 + frames_chunk_size, n)
        if release_memory:
            release_free_memory()
        low = _dpt_trunk(head, conv, [t[f0:f1] for t in layers], (H, W), patch_start_idx)
        for r0 in range(0, out_h, band_rows):
            r1 = min(r0 + band_rows, out_h)
            if release_memory:
                release_free_memory()
            out = _dpt_tail_rows(head, conv, low, (r0, r1), (out_h, out_w), W / H)
            if head.feature_only:
                if values is None:
                    values = torch.empty(n, out.shape[1], out_h, out_w, device=device, dtype=torch.float32)
                values[f0:f1, :, r0:r1] = out
                continue
            vals, cf = head.activate(out.float())
            del out
            if values is None:
                values = torch.empty(n, out_h, out_w, vals.shape[-1], device=device, dtype=torch.float32)
                conf = torch.empty(n, out_h, out_w, device=device, dtype=torch.float32)
            values[f0:f1, r0:r1], conf[f0:f1, r0:r1] = vals, cf
        del low
    if head.feature_only:
        return values.unflatten(0, (B, S))
    return values.unflatten(0, (B, S)), conf.unflatten(0, (B, S))
