"""Building blocks of dense prediction (DPT) heads, shared by both model families.

* :class:`ConvRunner` runs a head's convolutions in one compute dtype, optionally channels-last, converting each
  weight at its call (a cached copy of a VGGT-1B DPT head would hold 128 MB; converting costs about 1 % of the
  convolution).
* :class:`DPTFusion` is the part of a DPT head both families share: per aggregator layer the shared LayerNorm, a
  1x1 projection, the uv position embedding and the resampling to 4, 2, 1 and 1/2 times the patch grid, then the
  ``*_rn`` convolutions and the coarse-to-fine fusion up to refinenet1 at 4x the patch grid.
* :class:`ResidualConvUnit` and :class:`FeatureFusionBlock` are the fusion stages (Ranftl et al.). Each fusion
  block applies its 1x1 ``out_conv`` before its bilinear resize instead of after it: both are linear and the
  interpolation weights sum to one, so the result is the same up to rounding, for a quarter of the work and
  without a second full-size map.
* the aspect-aware uv position embedding is added in place from its two 1-D factors (it is separable), the same
  numbers as the full (C, h, w) grid for O(h + w) work.

ReLUs and residual sums run in place on fresh intermediates, which autograd allows (a ReLU's backward reads its
output, a convolution's reads its input, never its output).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Above this many output elements one interpolate call can overflow int32 indexing; split along the batch.
_INTERPOLATE_MAX_ELEMENTS = 1_610_612_736


def interpolate_bilinear(x: Tensor, size: Sequence[int]) -> Tensor:
    """Bilinear resize of x (N, C, h, w) with align_corners=True; a no-op at the same size; split along the batch
    when the output would be huge."""
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    n_out = size[0] * size[1] * x.shape[0] * x.shape[1]
    if n_out <= _INTERPOLATE_MAX_ELEMENTS:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=True)
    chunks = x.chunk(n_out // _INTERPOLATE_MAX_ELEMENTS + 1, dim=0)
    return torch.cat(
        [F.interpolate(c, size=size, mode="bilinear", align_corners=True) for c in chunks], dim=0
    )


@dataclass(frozen=True)
class DenseRun:
    """How a dense head runs (none of it changes the result beyond float rounding).

    Attributes:
        frames_chunk: frames (over all sequences) per pass; None: all at once.
        dtype: precision of the convolutions (LayerNorms and output activations run in float32).
        channels_last: convolutions channels-last (faster on CPUs).
        band_rows: output rows per pass of the full-resolution stages; None: all rows at once.
        release_memory: give freed heap pages back to the system before each pass and band.
    """

    frames_chunk: int | None = 8
    dtype: torch.dtype = torch.float32
    channels_last: bool = False
    band_rows: int | None = None
    release_memory: bool = False


# ----------------------------------------------------------------------------- position embedding
def uv_axes(
    width: int, height: int, aspect_ratio: float, dtype: torch.dtype, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Pixel-centre samples u (width,) of [-span_x, span_x] and v (height,) of [-span_y, span_y], with
    span = (ar, 1) / sqrt(ar^2 + 1)."""
    diag = (aspect_ratio**2 + 1.0) ** 0.5
    span_x, span_y = aspect_ratio / diag, 1.0 / diag
    xs = torch.linspace(
        -span_x * (width - 1) / width, span_x * (width - 1) / width, width, dtype=dtype, device=device
    )
    ys = torch.linspace(
        -span_y * (height - 1) / height, span_y * (height - 1) / height, height, dtype=dtype, device=device
    )
    return xs, ys


def sincos_embed_1d(pos: Tensor, dim: int, omega_0: float) -> Tensor:
    """pos (M,) -> (M, dim) = [sin(pos * w_k) | cos(pos * w_k)] with w_k = omega_0^(-k / (dim/2)), formed in
    float64 (float32 on MPS, which has no float64) and returned as float32."""
    compute_dtype = torch.float32 if pos.device.type == "mps" else torch.float64
    omega = 1.0 / omega_0 ** (torch.arange(dim // 2, dtype=compute_dtype, device=pos.device) / (dim / 2.0))
    angles = pos.reshape(-1).to(compute_dtype)[:, None] * omega[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def add_uv_position_embedding_(
    x: Tensor, aspect_ratio: float, ratio: float = 0.1, rows: tuple[int, int] | None = None
) -> Tensor:
    """x (N, C, h, w) += ratio * [sin u | cos u | sin v | cos v] of the aspect-aware uv grid, in place; returns x.

    The first C/2 channels depend on the column only, the rest on the row. ``rows=(first, height)``: x holds rows
    first .. first + h of a map of ``height`` rows (a band of it).
    """
    _, C, h, w = x.shape
    first, height = rows or (0, h)
    xs, ys = uv_axes(w, height, aspect_ratio, torch.float32, x.device)
    ys = ys[first : first + h]
    emb_u = sincos_embed_1d(xs, C // 2, 100).to(x.dtype)  # (w, C/2)
    emb_v = sincos_embed_1d(ys, C // 2, 100).to(x.dtype)  # (h, C/2)
    x[:, : C // 2].add_((ratio * emb_u).t()[None, :, None, :])
    x[:, C // 2 :].add_((ratio * emb_v).t()[None, :, :, None])
    return x


# ----------------------------------------------------------------------------- convolutions
class ConvRunner:
    """Runs convolutions (and stacks of them) in ``dtype``, optionally channels-last."""

    def __init__(self, dtype: torch.dtype = torch.float32, channels_last: bool = False) -> None:
        self.dtype = dtype
        self.channels_last = channels_last

    def _params(self, module: nn.Conv2d | nn.ConvTranspose2d) -> tuple[Tensor, Tensor | None]:
        # The weight keeps its layout: a channels-last input alone selects the channels-last kernels, which
        # reorder the weight themselves (a channels-last copy here would be one more copy of the weight).
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
            return self._conv2d(module, x)
        raise TypeError(f"ConvRunner does not support {type(module).__name__}")

    def _conv2d(self, module: nn.Conv2d, x: Tensor) -> Tensor:
        w, b = self._params(module)
        out_hw = [
            (size + 2 * p - d * (k - 1) - 1) // s + 1
            for size, k, p, d, s in zip(
                x.shape[-2:], module.kernel_size, module.padding, module.dilation, module.stride, strict=True
            )
        ]
        if module.groups == 1 and module.out_channels > x.shape[0] * out_hw[0] * out_hw[1]:
            return self._conv_as_product(module, x, w, b, out_hw)
        return F.conv2d(x, w, b, module.stride, module.padding, module.dilation, module.groups)

    def _conv_as_product(
        self, module: nn.Conv2d, x: Tensor, w: Tensor, b: Tensor | None, out_hw: list[int]
    ) -> Tensor:
        """``conv2d`` as weight (C_out, C_in*k*k) @ unfolded input, for maps with fewer output pixels than output
        channels (VGGT-1B's 1024-channel stride-2 convolution gives 19x14): the weight is then the largest
        operand, and the convolution kernels would first reorder it, in two copies (75 MB), for less work."""
        cols = F.unfold(
            x, module.kernel_size, module.dilation, module.padding, module.stride
        )  # (N, C_in*k*k, L)
        out = torch.matmul(w.view(w.shape[0], -1), cols)
        if b is not None:
            out += b[:, None]
        out = out.view(x.shape[0], -1, *out_hw)
        return out.contiguous(memory_format=torch.channels_last) if self.channels_last else out


# ----------------------------------------------------------------------------- fusion
class ResidualConvUnit(nn.Module):
    """conv2(relu(conv1(relu(x)))) + skip, with skip = relu(x) (``relu_skip``, VGGT: its released code applied
    the ReLU in place to the input) or x (VGGT-Omega)."""

    def __init__(self, features: int, relu_skip: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)
        self.relu_skip = relu_skip

    def forward(self, x: Tensor, conv: ConvRunner | None = None) -> Tensor:
        """x (N, F, h, w); consumed when ``relu_skip`` (the ReLU runs in place)."""
        conv = conv or ConvRunner(x.dtype)
        skip = F.relu_(x) if self.relu_skip else x
        h = skip if self.relu_skip else F.relu(x)
        return conv(self.conv2, F.relu_(conv(self.conv1, h))).add_(skip)


class FeatureFusionBlock(nn.Module):
    """out = out_conv(RCU2(x + RCU1(skip))), resized (bilinear, align_corners) to ``size``."""

    def __init__(self, features: int, has_residual: bool = True, relu_skip: bool = True) -> None:
        super().__init__()
        if has_residual:
            self.resConfUnit1 = ResidualConvUnit(features, relu_skip)
        self.resConfUnit2 = ResidualConvUnit(features, relu_skip)
        self.out_conv = nn.Conv2d(features, features, 1)

    def forward(
        self, x: Tensor, skip: Tensor | None, size: Sequence[int], conv: ConvRunner | None = None
    ) -> Tensor:
        """x, skip: (N, F, h, w) (both consumed) -> (N, F, *size)."""
        conv = conv or ConvRunner(x.dtype)
        if skip is not None:
            x = self.resConfUnit1(skip, conv).add_(x)
        return interpolate_bilinear(conv(self.out_conv, self.resConfUnit2(x, conv)), size)


# ----------------------------------------------------------------------------- the shared trunk
class DPTFusion(nn.Module):
    """Keys ``norm``, ``projects.k``, ``resize_layers.{0,1,3}``, ``scratch.layer{1..4}_rn``,
    ``scratch.refinenet{1..4}`` (refinenet4 without ``resConfUnit1``).

    Args:
        dim_in: width of the aggregator layers read (2C).
        patch_size: pixels per patch side.
        features: width F of the fusion maps.
        out_channels: widths of the four levels after projection.
        intermediate_layer_idx: the aggregator layer each level reads.
        relu_skip: the residual units' skip carries relu(x) (VGGT) or x (VGGT-Omega).
        pos_embed: add the uv position embedding to each projected level.
    """

    def __init__(
        self,
        dim_in: int,
        patch_size: int,
        features: int,
        out_channels: Sequence[int],
        intermediate_layer_idx: Sequence[int],
        relu_skip: bool = True,
        pos_embed: bool = True,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.pos_embed = pos_embed
        self.intermediate_layer_idx = tuple(intermediate_layer_idx)
        oc = tuple(out_channels)
        self.norm = nn.LayerNorm(dim_in)
        self.projects = nn.ModuleList(nn.Conv2d(dim_in, c, 1) for c in oc)
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(oc[0], oc[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(oc[1], oc[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(oc[3], oc[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.scratch = nn.Module()
        for i, c in enumerate(oc, start=1):
            setattr(self.scratch, f"layer{i}_rn", nn.Conv2d(c, features, 3, padding=1, bias=False))
        self.scratch.refinenet1 = FeatureFusionBlock(features, relu_skip=relu_skip)
        self.scratch.refinenet2 = FeatureFusionBlock(features, relu_skip=relu_skip)
        self.scratch.refinenet3 = FeatureFusionBlock(features, relu_skip=relu_skip)
        self.scratch.refinenet4 = FeatureFusionBlock(features, has_residual=False, relu_skip=relu_skip)

    def level(
        self, k: int, conv: ConvRunner, tokens: Tensor, image_hw: Sequence[int], patch_start_idx: int
    ) -> Tensor:
        """Level ``k`` of tokens (N, P, dim_in) of any float dtype: normalised patch tokens, projected, plus the
        position embedding, resampled: (N, out_channels[k], s*h, s*w) with s = 4, 2, 1, 1/2 (rounded up)."""
        H, W = image_hw
        grid_h, grid_w = H // self.patch_size, W // self.patch_size
        norm = self.norm
        x = F.layer_norm(tokens[:, patch_start_idx:].float(), norm.normalized_shape, norm.weight.float(),
                         norm.bias.float(), norm.eps).to(conv.dtype)  # fmt: skip
        x = x.view(x.shape[0], grid_h, grid_w, x.shape[-1]).permute(0, 3, 1, 2)  # channels-last memory
        if not conv.channels_last:
            x = x.contiguous()
        x = conv(self.projects[k], x)
        if self.pos_embed:
            add_uv_position_embedding_(x, W / H)
        return conv(self.resize_layers[k], x)

    def fuse(
        self, conv: ConvRunner, layers: Sequence[Tensor], image_hw: Sequence[int], patch_start_idx: int
    ) -> Tensor:
        """The four levels of ``layers`` (each (N, P, dim_in)) fused coarse to fine: refinenet1's output
        (N, F, 4h, 4w), before any resize."""
        s = self.scratch
        rn = []
        for k, tokens in enumerate(layers):
            # Straight to the 3x3 *_rn convolution: only the F-channel maps are kept, not the wider levels.
            rn.append(
                conv(getattr(s, f"layer{k + 1}_rn"), self.level(k, conv, tokens, image_hw, patch_start_idx))
            )
        out = s.refinenet4(rn.pop(), None, rn[2].shape[2:], conv)
        out = s.refinenet3(out, rn.pop(), rn[1].shape[2:], conv)
        out = s.refinenet2(out, rn.pop(), rn[0].shape[2:], conv)
        return s.refinenet1(out, rn.pop(), out.shape[2:], conv)
