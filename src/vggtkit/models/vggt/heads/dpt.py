"""DPT head: turns four aggregator layers into a dense map (depth, points, or track features)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vggtkit.models.vggt.heads.activations import apply_conf_activation, apply_point_activation

# Above this many output elements one interpolate call can overflow int32 indexing; split along the batch.
_INTERPOLATE_MAX_ELEMENTS = 1_610_612_736


def interpolate_bilinear(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize with align_corners=True, split along the batch when the output would be huge."""
    n_out = size[0] * size[1] * x.shape[0] * x.shape[1]
    if n_out <= _INTERPOLATE_MAX_ELEMENTS:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=True)
    chunks = x.chunk(n_out // _INTERPOLATE_MAX_ELEMENTS + 1, dim=0)
    return torch.cat(
        [F.interpolate(c, size=size, mode="bilinear", align_corners=True) for c in chunks], dim=0
    )


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


def uv_grid(width: int, height: int, aspect_ratio: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The grid of :func:`uv_axes`: (height, width, 2) holding (u, v)."""
    xs, ys = uv_axes(width, height, aspect_ratio, dtype, device)
    uu, vv = torch.meshgrid(xs, ys, indexing="xy")
    return torch.stack([uu, vv], dim=-1)


def sincos_embed_1d(pos: Tensor, dim: int, omega_0: float) -> Tensor:
    """pos (M,) -> (M, dim) = [sin(pos * w_k) | cos(pos * w_k)] with w_k = omega_0^(-k / (dim/2)), in float64."""
    compute_dtype = torch.float32 if pos.device.type == "mps" else torch.float64
    omega = 1.0 / omega_0 ** (torch.arange(dim // 2, dtype=compute_dtype, device=pos.device) / (dim / 2.0))
    angles = pos.reshape(-1).to(compute_dtype)[:, None] * omega[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def uv_position_embedding(
    height: int, width: int, channels: int, aspect_ratio: float, device: torch.device
) -> Tensor:
    """(channels, height, width) embedding [sin u | cos u | sin v | cos v] of the aspect-aware uv grid."""
    grid = uv_grid(width, height, aspect_ratio, torch.float32, device).reshape(-1, 2)
    emb = torch.cat(
        [sincos_embed_1d(grid[:, 0], channels // 2, 100), sincos_embed_1d(grid[:, 1], channels // 2, 100)], -1
    )
    return emb.reshape(height, width, channels).permute(2, 0, 1)


def add_uv_position_embedding_(
    x: Tensor, aspect_ratio: float, ratio: float = 0.1, rows: tuple[int, int] | None = None
) -> Tensor:
    """x (N, C, h, w) += ratio * uv_position_embedding(h, w, C, aspect_ratio), in place; returns x.

    The embedding is separable (the first C/2 channels depend on the column only, the rest on the row), so it is
    computed on the two axes and broadcast: the same numbers for O(h + w) work instead of O(C h w).
    ``rows=(first, height)``: x holds rows first .. first + h of a map of ``height`` rows (a band of it).
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


class ResidualConvUnit(nn.Module):
    """relu(x) + conv2(relu(conv1(relu(x)))).

    The released model applied an in-place ReLU to the input, so the skip path carries relu(x), not x.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(x)
        return x + self.conv2(F.relu(self.conv1(x)))


class FeatureFusionBlock(nn.Module):
    """out = RCU2(x + RCU1(skip)), resized (bilinear, align_corners) to ``size`` or x2, then a 1x1 ``out_conv``."""

    def __init__(self, features: int, has_residual: bool = True) -> None:
        super().__init__()
        if has_residual:
            self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)
        self.out_conv = nn.Conv2d(features, features, 1)

    def forward(self, x: Tensor, skip: Tensor | None = None, size: Sequence[int] | None = None) -> Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        size = tuple(size) if size is not None else (x.shape[-2] * 2, x.shape[-1] * 2)
        return self.out_conv(interpolate_bilinear(x, size))


class DPTHead(nn.Module):
    """Dense prediction head (Ranftl et al.) over four aggregator layers.

    Per layer: shared LayerNorm, 1x1 projection, optional uv position embedding, resampling to strides
    4, 8, 16 and 32 of the patch grid; then ``*_rn`` 3x3 convs, coarse-to-fine fusion, ``output_conv1``, a resize to
    the image size (divided by ``down_ratio``), the position embedding again, and either the features
    (``feature_only``) or ``output_conv2`` plus the activations.
    """

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
        super().__init__()
        self.patch_size = patch_size
        self.activation = activation
        self.conf_activation = conf_activation
        self.pos_embed = pos_embed
        self.feature_only = feature_only
        self.down_ratio = down_ratio
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
        self.scratch.refinenet1 = FeatureFusionBlock(features)
        self.scratch.refinenet2 = FeatureFusionBlock(features)
        self.scratch.refinenet3 = FeatureFusionBlock(features)
        self.scratch.refinenet4 = FeatureFusionBlock(features, has_residual=False)
        if feature_only:
            self.scratch.output_conv1 = nn.Conv2d(features, features, 3, padding=1)
        else:
            self.scratch.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
            self.scratch.output_conv2 = nn.Sequential(
                nn.Conv2d(features // 2, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, output_dim, 1)
            )

    def _add_pos_embed(self, x: Tensor, image_hw: tuple[int, int], ratio: float = 0.1) -> Tensor:
        H, W = image_hw
        emb = uv_position_embedding(x.shape[-2], x.shape[-1], x.shape[1], W / H, x.device)
        return x + ratio * emb.to(x.dtype)[None]

    def _fuse(self, feats: list[Tensor]) -> Tensor:
        s = self.scratch
        l1, l2, l3, l4 = (getattr(s, f"layer{i}_rn")(f) for i, f in enumerate(feats, start=1))
        out = s.refinenet4(l4, size=l3.shape[2:])
        out = s.refinenet3(out, l3, size=l2.shape[2:])
        out = s.refinenet2(out, l2, size=l1.shape[2:])
        out = s.refinenet1(out, l1)
        return s.output_conv1(out)

    def forward_frames(
        self, layers: Sequence[Tensor], image_hw: tuple[int, int], patch_start_idx: int
    ) -> Tensor:
        """Run the head on (N, P, C_in) tokens of N frames for each of the 4 layers.

        Returns the pre-activation map (N, output_dim, H', W'), or features (N, features, H', W').
        """
        H, W = image_hw
        grid_h, grid_w = H // self.patch_size, W // self.patch_size
        feats = []
        for k, tokens in enumerate(layers):
            x = self.norm(tokens[:, patch_start_idx:])
            x = x.transpose(1, 2).reshape(x.shape[0], x.shape[-1], grid_h, grid_w)
            x = self.projects[k](x)
            if self.pos_embed:
                x = self._add_pos_embed(x, image_hw)
            feats.append(self.resize_layers[k](x))
        out = self._fuse(feats)
        out_hw = (
            int(grid_h * self.patch_size / self.down_ratio),
            int(grid_w * self.patch_size / self.down_ratio),
        )
        out = interpolate_bilinear(out, out_hw)
        if self.pos_embed:
            out = self._add_pos_embed(out, image_hw)
        if self.feature_only:
            return out
        return self.scratch.output_conv2(out)

    def activate(self, out: Tensor) -> tuple[Tensor, Tensor]:
        """(..., C, H, W) pre-activation -> values (..., H, W, C-1) and confidence (..., H, W)."""
        out = out.movedim(-3, -1)
        return apply_point_activation(out[..., :-1], self.activation), apply_conf_activation(
            out[..., -1], self.conf_activation
        )

    def forward(
        self,
        aggregated_tokens_list: Sequence[Tensor | None],
        images: Tensor,
        patch_start_idx: int,
        frames_chunk_size: int | None = 8,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Args:
            aggregated_tokens_list: aggregator outputs, (B, S, P, C_in) at least at ``intermediate_layer_idx``.
            images: (B, S, 3, H, W), used for its size.
            frames_chunk_size: frames per pass (bounds memory); None runs all frames at once.

        Returns:
            feature_only: (B, S, features, H/down, W/down). Otherwise (B, S, H, W, output_dim-1) values and
            (B, S, H, W) confidence.
        """
        B, S, _, H, W = images.shape
        chunk = S if not frames_chunk_size or frames_chunk_size >= S else frames_chunk_size
        layers = [aggregated_tokens_list[i] for i in self.intermediate_layer_idx]
        outs = []
        for start in range(0, S, chunk):
            frame_layers = [t[:, start : start + chunk].flatten(0, 1) for t in layers]
            out = self.forward_frames(frame_layers, (H, W), patch_start_idx)
            outs.append(out.unflatten(0, (B, -1)))
        out = torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]
        if self.feature_only:
            return out
        return self.activate(out)
