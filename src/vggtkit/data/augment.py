"""Training augmentations without torchvision: crop around the principal point, resize with intrinsics update,
and colour jitter. Images are (..., 3, H, W) in [0, 1]; depth maps (..., H, W); intrinsics (..., 3, 3) in pixels
with integer pixel indices at pixel centres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def crop_around_principal_point(
    images: Tensor, depths: Tensor | None, intrinsics: Tensor, crop_hw: tuple[int, int]
) -> tuple[Tensor, Tensor | None, Tensor]:
    """Crop a ``crop_hw`` window centred on the principal point (zero padding where it leaves the image).

    Args:
        images: (S, 3, H, W); depths: optional (S, H, W); intrinsics: (S, 3, 3).
        crop_hw: output (h, w) in pixels.

    Returns:
        cropped images (S, 3, h, w), depths (S, h, w) (or None) and intrinsics with the principal point shifted.
    """
    frames = images.shape[0]
    h, w = crop_hw
    out_images = images.new_zeros(frames, images.shape[1], h, w)
    out_depths = depths.new_zeros(frames, h, w) if depths is not None else None
    new_k = intrinsics.clone()
    for i in range(frames):
        x0 = int(round(float(intrinsics[i, 0, 2]) - w / 2))
        y0 = int(round(float(intrinsics[i, 1, 2]) - h / 2))
        src_x0, src_y0 = max(x0, 0), max(y0, 0)
        src_x1, src_y1 = min(x0 + w, images.shape[-1]), min(y0 + h, images.shape[-2])
        if src_x1 > src_x0 and src_y1 > src_y0:
            dst = (slice(src_y0 - y0, src_y1 - y0), slice(src_x0 - x0, src_x1 - x0))
            out_images[i, :, dst[0], dst[1]] = images[i, :, src_y0:src_y1, src_x0:src_x1]
            if depths is not None:
                out_depths[i, dst[0], dst[1]] = depths[i, src_y0:src_y1, src_x0:src_x1]
        new_k[i, 0, 2] -= x0
        new_k[i, 1, 2] -= y0
    return out_images, out_depths, new_k


def resize_with_intrinsics(
    images: Tensor, depths: Tensor | None, intrinsics: Tensor, size_hw: tuple[int, int]
) -> tuple[Tensor, Tensor | None, Tensor]:
    """Resize images (bicubic, antialiased when shrinking) and depths (nearest) and update the intrinsics.

    The intrinsics follow the pixel-centre-aware rule of the released code: c += 0.5, K[:2] *= scale,
    c -= 0.5 (per axis).

    Args:
        images: (S, 3, H, W); depths: optional (S, H, W); intrinsics: (S, 3, 3); size_hw: output (h, w).

    Returns:
        resized images (S, 3, h, w) clamped to [0, 1], depths (S, h, w) or None, and new intrinsics.
    """
    height, width = images.shape[-2:]
    h, w = size_hw
    shrink = h < height or w < width
    out = F.interpolate(images, size=(h, w), mode="bicubic", align_corners=False, antialias=shrink).clamp(
        0, 1
    )
    out_depths = None
    if depths is not None:
        out_depths = F.interpolate(depths[:, None], size=(h, w), mode="nearest-exact")[:, 0]
    new_k = intrinsics.clone()
    scale = torch.tensor([w / width, h / height], dtype=intrinsics.dtype)
    new_k[:, :2, 2] += 0.5
    new_k[:, :2, :] *= scale[None, :, None]
    new_k[:, :2, 2] -= 0.5
    return out, out_depths, new_k


# ----------------------------------------------------------------------------- colour
def _rgb_to_hsv(rgb: Tensor) -> Tensor:
    r, g, b = rgb.unbind(-3)
    maxc, _ = rgb.max(dim=-3)
    minc, _ = rgb.min(dim=-3)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(
        maxc == r, ((g - b) / safe) % 6, torch.where(maxc == g, (b - r) / safe + 2, (r - g) / safe + 4)
    )
    hue = torch.where(delta > 0, hue / 6, torch.zeros_like(hue))
    sat = torch.where(
        maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc)
    )
    return torch.stack((hue, sat, maxc), dim=-3)


def _hsv_to_rgb(hsv: Tensor) -> Tensor:
    h, s, v = hsv.unbind(-3)
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=-3)
    return v.unsqueeze(-3) - v.unsqueeze(-3) * s.unsqueeze(-3) * (torch.minimum(k, 4 - k).clamp(0, 1))


def _grey(images: Tensor) -> Tensor:
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype, device=images.device)
    return (images * weights[:, None, None]).sum(-3, keepdim=True)


@dataclass(frozen=True)
class ColorJitter:
    """Brightness, contrast, saturation and hue jitter plus random greyscale (the released training's defaults).

    Factors are drawn uniformly: brightness/contrast/saturation in [1 - x, 1 + x], hue shift in [-hue, hue]
    (fraction of a turn). ``p`` is the chance of jittering at all; ``shared_p`` the chance that all frames of a
    sequence share one jitter (the released code's "cojitter": 0.7).
    """

    brightness: float = 0.5
    contrast: float = 0.5
    saturation: float = 0.5
    hue: float = 0.1
    p: float = 0.9
    grayscale_p: float = 0.05
    shared_p: float = 0.7

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"hue must lie in [0, 0.5], got {self.hue}")
        for name in ("p", "grayscale_p", "shared_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a probability, got {getattr(self, name)}")

    def _one(self, image: Tensor, gen: torch.Generator) -> Tensor:
        def factor(x: float) -> float:
            return 1 + x * (2 * float(torch.rand(1, generator=gen)) - 1)

        order = torch.randperm(4, generator=gen).tolist()
        b, c, s = factor(self.brightness), factor(self.contrast), factor(self.saturation)
        h = self.hue * (2 * float(torch.rand(1, generator=gen)) - 1)
        for op in order:
            if op == 0:
                image = (image * b).clamp(0, 1)
            elif op == 1:
                mean = _grey(image).mean(dim=(-1, -2), keepdim=True)
                image = (mean + c * (image - mean)).clamp(0, 1)
            elif op == 2:
                image = (_grey(image) + s * (image - _grey(image))).clamp(0, 1)
            elif abs(h) > 0:
                hsv = _rgb_to_hsv(image)
                hsv = torch.stack(
                    ((hsv[..., 0, :, :] + h) % 1.0, hsv[..., 1, :, :], hsv[..., 2, :, :]), dim=-3
                )
                image = _hsv_to_rgb(hsv).clamp(0, 1)
        return image

    def __call__(self, images: Tensor, gen: torch.Generator) -> Tensor:
        """Jitter (S, 3, H, W) images in [0, 1]; deterministic given ``gen``."""
        if float(torch.rand(1, generator=gen)) >= self.p:
            out = images
        elif float(torch.rand(1, generator=gen)) < self.shared_p:
            # One jitter for the whole sequence: apply it to all frames as one batch.
            out = self._one(images, gen)
        else:
            out = torch.stack([self._one(frame, gen) for frame in images])
        if float(torch.rand(1, generator=gen)) < self.grayscale_p:
            out = _grey(out).expand_as(out).clone()
        return out


def random_zoom(
    images: Tensor,
    depths: Tensor,
    intrinsics: Tensor,
    gen: torch.Generator,
    scale_range: tuple[float, float] = (0.8, 1.2),
) -> tuple[Tensor, Tensor, Tensor]:
    """The released scale augmentation: per-axis scale s ~ U(range) capped at 1, crop orig*s around the principal
    point, then resize back to the input size (so the field of view narrows, as in a zoom).

    Args:
        images: (S, 3, H, W); depths: (S, H, W); intrinsics: (S, 3, 3); gen: random generator.

    Returns:
        images, depths, intrinsics of the input size.
    """
    height, width = images.shape[-2:]
    lo, hi = scale_range
    sy = min(1.0, lo + (hi - lo) * float(torch.rand(1, generator=gen)))
    sx = min(1.0, lo + (hi - lo) * float(torch.rand(1, generator=gen)))
    if sx >= 1.0 and sy >= 1.0:
        return images, depths, intrinsics
    crop = (max(2, math.floor(height * sy / 2) * 2), max(2, math.floor(width * sx / 2) * 2))
    images, depths, intrinsics = crop_around_principal_point(images, depths, intrinsics, crop)
    images, depths, intrinsics = resize_with_intrinsics(images, depths, intrinsics, (height, width))
    return images, depths, intrinsics
