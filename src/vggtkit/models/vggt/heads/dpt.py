"""DPT head: turns four aggregator layers into a dense map (depth, points, or track features).

Per layer: the shared LayerNorm, a 1x1 projection, the uv position embedding, resampling to strides 4, 8, 16 and
32 of the patch grid, then ``*_rn`` 3x3 convolutions and coarse-to-fine fusion (the trunk, at 4x the patch
grid). The full-resolution tail (refinenet1's x2 resize, ``output_conv1``, the resize to the image size, the
position embedding again, and ``output_conv2`` plus the activations unless ``feature_only``) runs in bands of
output rows with the convolutions' halo rows when ``band_rows`` asks for it, so no map of the whole image at 8x
the patch grid or at full size need be held.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from vggtkit.layers.dpt import (
    ConvRunner,
    DenseRun,
    DPTFusion,
    add_uv_position_embedding_,
    interpolate_bilinear,
)
from vggtkit.models.vggt.heads.activations import apply_conf_activation, apply_point_activation
from vggtkit.utils.memory import release_free_memory


class DPTHead(DPTFusion):
    """Dense prediction head (Ranftl et al.) over four aggregator layers (keys as the released checkpoint)."""

    def __init__(
        self,
        dim_in: int,
        patch_size: int = 14,
        output_dim: int = 4,
        activation: str = "inv_log",
        conf_activation: str = "expp1",
        features: int = 256,
        out_channels: Sequence[int] = (256, 512, 1024, 1024),
        intermediate_layer_idx: Sequence[int] = (4, 11, 17, 23),
        pos_embed: bool = True,
        feature_only: bool = False,
        down_ratio: int = 1,
    ) -> None:
        super().__init__(
            dim_in, patch_size, features, out_channels, intermediate_layer_idx, pos_embed=pos_embed
        )
        self.activation = activation
        self.conf_activation = conf_activation
        self.feature_only = feature_only
        self.down_ratio = down_ratio
        if feature_only:
            self.scratch.output_conv1 = nn.Conv2d(features, features, 3, padding=1)
        else:
            self.scratch.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
            self.scratch.output_conv2 = nn.Sequential(
                nn.Conv2d(features // 2, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, output_dim, 1)
            )

    def activate(self, out: Tensor) -> tuple[Tensor, Tensor]:
        """(..., C, H, W) pre-activation -> values (..., H, W, C-1) and confidence (..., H, W)."""
        out = out.movedim(-3, -1)
        return apply_point_activation(out[..., :-1], self.activation), apply_conf_activation(
            out[..., -1], self.conf_activation
        )

    def output_size(self, image_hw: Sequence[int]) -> tuple[int, int]:
        """(height, width) of the output map for images of ``image_hw``."""
        p = self.patch_size
        return (
            int(image_hw[0] // p * p / self.down_ratio),
            int(image_hw[1] // p * p / self.down_ratio),
        )

    def forward(
        self,
        aggregated_tokens_list: Sequence[Tensor | None],
        images: Tensor,
        patch_start_idx: int,
        run: DenseRun | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Args:
            aggregated_tokens_list: aggregator outputs (B, S, P, C_in) of any float dtype, at least at
                ``intermediate_layer_idx``.
            images: (B, S, 3, H, W), used for its size.
            run: frames per pass, precision, layout and row bands (default: 8 frames per pass, float32, all rows,
                as the official code).

        Returns:
            feature_only: (B, S, features, H/down, W/down). Otherwise (B, S, H, W, output_dim-1) values and
            (B, S, H, W) confidence. float32.
        """
        run = run or DenseRun()
        B, S, _, H, W = images.shape
        layers = [aggregated_tokens_list[i].flatten(0, 1) for i in self.intermediate_layer_idx]
        n = B * S
        chunk = min(run.frames_chunk or n, n)
        conv = ConvRunner(run.dtype, run.channels_last)
        out_hw = self.output_size((H, W))
        band = run.band_rows or out_hw[0]
        out = _DenseOutput(self, n, out_hw)
        for f0 in range(0, n, chunk):
            f1 = min(f0 + chunk, n)
            if run.release_memory:
                release_free_memory()
            low = self.fuse(conv, [t[f0:f1] for t in layers], (H, W), patch_start_idx)
            for r0 in range(0, out_hw[0], band):
                r1 = min(r0 + band, out_hw[0])
                if run.release_memory:
                    release_free_memory()
                out.write((f0, f1), (r0, r1), self._tail_rows(conv, low, (r0, r1), out_hw, W / H))
            del low
        return out.result(B, S)

    def _tail_rows(
        self, conv: ConvRunner, low: Tensor, rows: tuple[int, int], out_hw: tuple[int, int], aspect: float
    ) -> Tensor:
        """Rows [r0, r1) of the head's output from the trunk's map ``low`` (N, F, h, w): (N, C_out, r1 - r0, W').

        Each stage computes the rows the next one reads, including the 3x3 convolutions' halo rows. A convolution
        sees zeros beyond the rows it is given, so the rows within its halo of a band edge are wrong unless the
        edge is the map's border; those rows are cropped. The band equals those rows of the whole map up to
        rounding.
        """
        s = self.scratch
        (h, w), (out_h, out_w) = low.shape[-2:], out_hw
        # The rows each stage needs, from the output back to ``low``.
        full = rows if self.feature_only else _widen(rows, _halo(s.output_conv2), out_h)
        to_full = _taps(full, 2 * h, out_h, low.device)
        mid = _widen(to_full.span, _halo(s.output_conv1), 2 * h)
        to_mid = _taps(mid, h, 2 * h, low.device)
        x = _resize_rows(low[:, :, slice(*to_mid.span)], to_mid, 2 * w, conv.channels_last)
        x = _crop(conv(s.output_conv1, x), mid, to_full.span)
        x = _resize_rows(x, to_full, out_w, conv.channels_last)
        if self.pos_embed:
            add_uv_position_embedding_(x, aspect, rows=(full[0], out_h))
        if self.feature_only:
            return x
        return _crop(conv(s.output_conv2, x), full, rows)


class _DenseOutput:
    """The head's float32 outputs, filled band by band (features, or activated values and confidence)."""

    def __init__(self, head: DPTHead, n: int, out_hw: tuple[int, int]) -> None:
        self.head, self.n, self.out_hw = head, n, out_hw
        self.values: Tensor | None = None
        self.conf: Tensor | None = None

    def write(self, frames: tuple[int, int], rows: tuple[int, int], out: Tensor) -> None:
        (f0, f1), (r0, r1) = frames, rows
        if self.head.feature_only:
            if self.values is None:
                self.values = out.new_empty(self.n, out.shape[1], *self.out_hw, dtype=torch.float32)
            self.values[f0:f1, :, r0:r1] = out
            return
        values, conf = self.head.activate(out.float())
        if self.values is None:
            self.values = values.new_empty(self.n, *self.out_hw, values.shape[-1])
            self.conf = conf.new_empty(self.n, *self.out_hw)
        self.values[f0:f1, r0:r1], self.conf[f0:f1, r0:r1] = values, conf

    def result(self, B: int, S: int) -> Tensor | tuple[Tensor, Tensor]:
        if self.head.feature_only:
            return self.values.unflatten(0, (B, S))
        return self.values.unflatten(0, (B, S)), self.conf.unflatten(0, (B, S))


# ----------------------------------------------------------------------------- row bands
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
    if taps.whole:  # one band: the resize kernel itself (the row gather below is slower)
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
