"""VGGT-Omega preprocessing: aspect crop into [1:2, 2:1], then a patch-aligned size that keeps the aspect ratio.

:func:`load_and_preprocess_omega_images` reproduces the official ``load_and_preprocess_images`` of VGGT-Omega
exactly (PIL bicubic resize, white padding only when the sizes differ). Two modes choose the size:

* ``balanced`` (the default, and what the official demo uses): about (resolution / patch)^2 patches whatever the
  aspect ratio; a 3:2 landscape photo becomes 624 x 416 at 512.
* ``max_size``: the longer side becomes ``resolution``, the shorter one the nearest multiple of the patch size.

:func:`omega_layout` gives the geometry of one image and :func:`omega_original_from_model` the map from model pixels
back to the original photo's, for exports at the original resolution.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
import torch
from PIL import Image

from vggtkit.io.images import PathLike, PreprocessLayout, load_rgb_image, original_from_model, pad_white

__all__ = [
    "OMEGA_MODES",
    "OmegaLayout",
    "OmegaMode",
    "load_and_preprocess_omega_images",
    "omega_layout",
    "omega_original_from_model",
    "preprocess_omega_image",
]

logger = logging.getLogger(__name__)

OmegaMode = Literal["balanced", "max_size"]
OMEGA_MODES = ("balanced", "max_size")
MIN_ASPECT, MAX_ASPECT = 0.5, 2.0  # height / width kept after the centre crop


class OmegaLayout(NamedTuple):
    """Where :func:`preprocess_omega_image` takes an image from and what it makes of it: the crop box
    (``crop_left``, ``crop_top``, ``crop_w`` x ``crop_h``) of the original, resized to ``out_w`` x ``out_h``."""

    crop_left: int
    crop_top: int
    crop_w: int
    crop_h: int
    out_w: int
    out_h: int


def _aspect_crop(width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, w, h) of the centred crop whose height / width lies in [0.5, 2] (the whole image if it does)."""
    aspect = height / max(width, 1)
    if aspect < MIN_ASPECT:
        crop_w = min(width, max(1, round(height / MIN_ASPECT)))
        return (width - crop_w) // 2, 0, crop_w, height
    if aspect > MAX_ASPECT:
        crop_h = min(height, max(1, round(width * MAX_ASPECT)))
        return 0, (height - crop_h) // 2, width, crop_h
    return 0, 0, width, height


def _target_size(
    width: int, height: int, mode: OmegaMode, resolution: int, patch_size: int
) -> tuple[int, int]:
    """(width, height) of the resized image, multiples of the patch size."""
    aspect = height / max(width, 1)
    if mode == "balanced":
        tokens = (resolution // patch_size) ** 2
        w_f = math.sqrt(tokens / aspect)
        h_f = tokens / w_f  # from the unrounded width, as the official code
        w_patches = max(1, int(np.round(w_f)))  # numpy rounds half to even
        h_patches = max(1, int(np.round(h_f)))
        return w_patches * patch_size, h_patches * patch_size
    if aspect >= 1:
        return max(patch_size, int(np.round(resolution / aspect / patch_size) * patch_size)), resolution
    return resolution, max(patch_size, int(np.round(resolution * aspect / patch_size) * patch_size))


def omega_layout(
    width: int, height: int, mode: OmegaMode = "balanced", resolution: int = 512, patch_size: int = 16
) -> OmegaLayout:
    """The geometry of :func:`preprocess_omega_image` for a ``width`` x ``height`` image (pixels)."""
    left, top, crop_w, crop_h = _aspect_crop(width, height)
    out_w, out_h = _target_size(crop_w, crop_h, mode, resolution, patch_size)
    return OmegaLayout(left, top, crop_w, crop_h, out_w, out_h)


def omega_original_from_model(
    width: int, height: int, layout: OmegaLayout, pad: tuple[int, int] = (0, 0)
) -> np.ndarray:
    """(3, 3) map from model pixel coordinates to those of the ``width`` x ``height`` original image (pixel centres
    at integer coordinates), for an image placed by ``layout`` and then padded by ``pad`` = (top, left)."""
    resized = PreprocessLayout(layout.out_w, layout.out_h, 0, 0, layout.out_w, layout.out_h)
    crop_from_model = original_from_model(layout.crop_w, layout.crop_h, resized, pad)
    crop_from_model[0, 2] += layout.crop_left
    crop_from_model[1, 2] += layout.crop_top
    return crop_from_model


def preprocess_omega_image(
    img: Image.Image, mode: OmegaMode = "balanced", resolution: int = 512, patch_size: int = 16
) -> np.ndarray:
    """Crop and resize one RGB image as VGGT-Omega's loader does: float32 (3, H, W) in [0, 1], H and W multiples
    of the patch size."""
    layout = omega_layout(img.width, img.height, mode, resolution, patch_size)
    box = (
        layout.crop_left,
        layout.crop_top,
        layout.crop_left + layout.crop_w,
        layout.crop_top + layout.crop_h,
    )
    if box != (0, 0, img.width, img.height):
        img = img.crop(box)
    resized = img.resize((layout.out_w, layout.out_h), Image.Resampling.BICUBIC)
    chw = np.asarray(resized, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(chw)


def _validate(paths: Sequence[PathLike], mode: str, resolution: int, patch_size: int) -> list[PathLike]:
    if isinstance(paths, (str, bytes)) or not isinstance(paths, Sequence):
        raise ValueError(f"image paths must be a list of paths, got {paths!r}; wrap a single path in a list")
    if not paths:
        raise ValueError("the list of image paths is empty; pass at least one image path")
    if mode not in OMEGA_MODES:
        raise ValueError(f"mode must be one of {', '.join(OMEGA_MODES)}, got {mode!r}")
    for name, value in (("image_resolution", resolution), ("patch_size", patch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if resolution % patch_size:
        raise ValueError(
            f"image_resolution={resolution} must be a multiple of patch_size={patch_size} "
            f"(e.g. {max(1, round(resolution / patch_size)) * patch_size})"
        )
    return list(paths)


def load_and_preprocess_omega_images(
    image_path_list: Sequence[PathLike],
    mode: OmegaMode = "balanced",
    image_resolution: int = 512,
    patch_size: int = 16,
    *,
    exif_transpose: bool = False,
) -> torch.Tensor:
    """Load images and preprocess them for VGGT-Omega, as its official ``load_and_preprocess_images`` does.

    Each image is loaded with :func:`~vggtkit.io.images.load_rgb_image` (RGBA composited over white) and resized
    by :func:`preprocess_omega_image`. If the results differ in shape, a warning is logged and every image is
    padded with white (1.0) to the largest height and width, top/left receiving half (floored) of the padding.

    Args:
        image_path_list: image file paths; their order is the frame order.
        mode: "balanced" (about (image_resolution / patch_size)^2 patches) or "max_size" (longer side =
            ``image_resolution``).
        image_resolution: 512 for VGGT-Omega-1B-512, 256 for the text alignment model.
        patch_size: the model's patch size (16).
        exif_transpose: apply EXIF orientation tags (the official loader does not).

    Returns:
        float32 tensor (N, 3, H, W) in [0, 1].

    Raises:
        ValueError: an empty list, an unknown mode, a resolution or patch size that is not a positive integer or
            a resolution not divisible by the patch size, or a missing or unreadable file (named).
    """
    paths = _validate(image_path_list, mode, image_resolution, patch_size)
    arrays = [
        preprocess_omega_image(
            load_rgb_image(p, exif_transpose=exif_transpose), mode, image_resolution, patch_size
        )
        for p in paths
    ]
    shapes = sorted({a.shape[1:] for a in arrays})
    if len(shapes) > 1:
        logger.warning("images have different shapes %s; padding all with white to the largest", shapes)
        max_h = max(h for h, _ in shapes)
        max_w = max(w for _, w in shapes)
        arrays = [pad_white(a, max_h, max_w) for a in arrays]
    return torch.from_numpy(np.stack(arrays))
