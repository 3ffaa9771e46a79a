"""Image loading and VGGT preprocessing (crop / pad to a 14-pixel grid, values in [0, 1]).

:func:`load_and_preprocess_images` reproduces upstream VGGT's loader (PIL bicubic resize, white padding)
exactly with its default arguments; the extra keywords are opt-in.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "PATCH_SIZE",
    "PreprocessLayout",
    "PreprocessMode",
    "load_and_preprocess_images",
    "load_rgb_image",
    "original_from_model",
    "pad_offsets",
    "pad_white",
    "preprocess_image",
    "preprocess_layout",
]

logger = logging.getLogger(__name__)

PATCH_SIZE = 14
PreprocessMode = Literal["crop", "pad"]
_MODES = ("crop", "pad")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
PathLike = str | os.PathLike[str]


def _to_8bit(img: Image.Image) -> Image.Image:
    """Map 16-bit / 32-bit integer grayscale to 8-bit "L" by scaling (PIL's convert would clip at 255).

    "I;16*" images are always scaled by 1/257 (65535 -> 255). "I" images are scaled the same way when
    their values exceed 255 (16-bit data), and only clipped to [0, 255] otherwise.
    """
    arr = np.asarray(img).astype(np.float64)
    if img.mode in _SIXTEEN_BIT_MODES or (arr.size and arr.max() > 255):
        arr = arr / 257.0
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))


def load_rgb_image(path: PathLike, exif_transpose: bool = False) -> Image.Image:
    """Load one image file as an 8-bit RGB PIL image, as upstream VGGT does.

    RGBA images are alpha-composited over opaque white; other modes are converted with
    ``convert("RGB")`` (other alpha channels are dropped), except 16-bit / 32-bit integer grayscale, which
    is first scaled to the 8-bit range.

    Args:
        path: image file path.
        exif_transpose: apply the EXIF orientation tag (upstream does not, so the default is False).

    Returns:
        An RGB ``PIL.Image.Image`` of the file's size (after the optional EXIF rotation).

    Raises:
        ValueError: if the file does not exist or cannot be read as an image.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"image file not found: '{path}'; check the path (and the working directory)")
    try:
        with Image.open(path) as opened:
            opened.load()
            img = opened.copy() if not exif_transpose else ImageOps.exif_transpose(opened)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(
            f"cannot read '{path}' as an image ({err}); pass an image file PIL can open (PNG, JPEG, ...)"
        ) from err
    if img.mode == "RGBA":
        img = Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img)
    elif img.mode in _SIXTEEN_BIT_MODES or img.mode == "I":
        img = _to_8bit(img)
    return img.convert("RGB")


def _target_shape(width: int, height: int, mode: PreprocessMode, target_size: int) -> tuple[int, int]:
    """Resized (width, height): the long side (crop: the width) becomes ``target_size``, the other side
    is rounded (Python round, half to even) to a multiple of the patch size."""
    if mode == "pad" and height > width:
        return round(width * (target_size / height) / PATCH_SIZE) * PATCH_SIZE, target_size
    return target_size, round(height * (target_size / width) / PATCH_SIZE) * PATCH_SIZE


def pad_offsets(h: int, w: int, height: int, width: int) -> tuple[int, int]:
    """(top, left) where an (h, w) image lands when padded to (height, width): half (floored) of the padding."""
    return max(height - h, 0) // 2, max(width - w, 0) // 2


def pad_white(chw: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pad a (3, h, w) image with 1.0 to (3, height, width); top/left get half (floored) of the padding."""
    pad_h = height - chw.shape[1]
    pad_w = width - chw.shape[2]
    if pad_h <= 0 and pad_w <= 0:
        return chw
    top, left = pad_offsets(chw.shape[1], chw.shape[2], height, width)
    return np.pad(chw, ((0, 0), (top, pad_h - top), (left, pad_w - left)), constant_values=1.0)


class PreprocessLayout(NamedTuple):
    """Where :func:`preprocess_image` puts an image: resized to ``resized_w`` x ``resized_h``, its top-left
    corner at (``left``, ``top``) in an ``out_w`` x ``out_h`` output (``top`` < 0: rows were cropped)."""

    resized_w: int
    resized_h: int
    left: int
    top: int
    out_w: int
    out_h: int


def preprocess_layout(
    width: int, height: int, mode: PreprocessMode = "crop", target_size: int = 518
) -> PreprocessLayout:
    """The geometry of :func:`preprocess_image` for a ``width`` x ``height`` image (pixels)."""
    new_w, new_h = _target_shape(width, height, mode, target_size)
    if mode == "pad":
        top, left = pad_offsets(new_h, new_w, target_size, target_size)
        return PreprocessLayout(new_w, new_h, left, top, target_size, target_size)
    if new_h > target_size:
        return PreprocessLayout(new_w, new_h, 0, -((new_h - target_size) // 2), new_w, target_size)
    return PreprocessLayout(new_w, new_h, 0, 0, new_w, new_h)


def original_from_model(
    width: int, height: int, layout: PreprocessLayout, pad: tuple[int, int] = (0, 0)
) -> np.ndarray:
    """(3, 3) map from model pixel coordinates to those of the ``width`` x ``height`` original image.

    Pixel centres are at integer coordinates (OpenCV) and pixel edges scale: ``u_o + 0.5 = (u_m - left + 0.5)
    * width / resized_w``, ``left`` being where the resized image's first column lands in the model image.

    Args:
        width: original image width in pixels; height: its height.
        layout: where :func:`preprocess_image` put the image (see :func:`preprocess_layout`).
        pad: (top, left) padding added around the preprocessed image afterwards (a batch of mixed shapes).
    """
    left = layout.left + pad[1]
    top = layout.top + pad[0]
    sx, sy = width / layout.resized_w, height / layout.resized_h  # original pixels per model pixel
    return np.array([[sx, 0.0, (0.5 - left) * sx - 0.5], [0.0, sy, (0.5 - top) * sy - 0.5], [0.0, 0.0, 1.0]])


def preprocess_image(img: Image.Image, mode: PreprocessMode = "crop", target_size: int = 518) -> np.ndarray:
    """Resize one RGB image for VGGT and convert it to float32 (3, H, W) in [0, 1].

    crop: width -> ``target_size``, height rounded to a multiple of 14, then rows centre-cropped to
    ``target_size`` if taller. pad: longer side -> ``target_size``, then white padding to a square.

    Args:
        img: RGB PIL image (see :func:`load_rgb_image`).
        mode: "crop" or "pad".
        target_size: output width (crop) or side (pad) in pixels, a positive multiple of 14.

    Returns:
        float32 array (3, H, W).
    """
    layout = preprocess_layout(img.width, img.height, mode, target_size)
    resized = img.resize((layout.resized_w, layout.resized_h), Image.Resampling.BICUBIC)
    chw = np.asarray(resized, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)
    if layout.top < 0:  # crop mode, taller than target_size: keep the centre rows
        chw = chw[:, -layout.top : -layout.top + layout.out_h, :]
    if mode == "pad":
        chw = pad_white(chw, layout.out_h, layout.out_w)
    return np.ascontiguousarray(chw)


def _validate(image_path_list: Sequence[PathLike], mode: str, target_size: int) -> list[PathLike]:
    if isinstance(image_path_list, (str, bytes, os.PathLike)):
        raise ValueError(
            f"image_path_list must be a list of paths, got the single path {image_path_list!r}; "
            "wrap it in a list"
        )
    paths = list(image_path_list)
    if not paths:
        raise ValueError("image_path_list is empty; pass at least one image path")
    if mode not in _MODES:
        raise ValueError(f"mode must be 'crop' or 'pad', got {mode!r}")
    if isinstance(target_size, bool) or not isinstance(target_size, int) or target_size <= 0:
        raise ValueError(f"target_size must be a positive multiple of {PATCH_SIZE}, got {target_size!r}")
    if target_size % PATCH_SIZE:
        raise ValueError(
            f"target_size must be a positive multiple of {PATCH_SIZE}, got {target_size} "
            f"(e.g. use {round(target_size / PATCH_SIZE) * PATCH_SIZE or PATCH_SIZE})"
        )
    return paths


def load_and_preprocess_images(
    image_path_list: Sequence[PathLike],
    mode: PreprocessMode = "crop",
    *,
    target_size: int = 518,
    exif_transpose: bool = False,
) -> torch.Tensor:
    """Load images and preprocess them for VGGT, as upstream ``load_and_preprocess_images`` does.

    Each image is loaded with :func:`load_rgb_image` and resized with :func:`preprocess_image`. If the
    results differ in shape (crop mode with mixed aspect ratios), a warning is logged and every image is
    padded with white to the largest height and width, top/left receiving half of the padding.

    Args:
        image_path_list: image file paths (str or ``os.PathLike``); their order is the frame order.
        mode: "crop" (width = ``target_size``, centre-crop taller images) or "pad" (square, white padding).
        target_size: output width / side in pixels, a positive multiple of 14 (upstream: fixed 518).
        exif_transpose: apply EXIF orientation tags (upstream does not).

    Returns:
        float32 tensor (N, 3, H, W) in [0, 1]; a 4:3 landscape image gives H, W = 392, 518 in crop mode.

    Raises:
        ValueError: on an empty list, an unknown mode, a bad ``target_size``, or a missing or unreadable
            file (the message names the file).
    """
    paths = _validate(image_path_list, mode, target_size)
    arrays = [
        preprocess_image(load_rgb_image(path, exif_transpose=exif_transpose), mode, target_size)
        for path in paths
    ]
    shapes = sorted({a.shape[1:] for a in arrays})
    if len(shapes) > 1:
        logger.warning("images have different shapes %s; padding all with white to the largest", shapes)
        max_h = max(h for h, _ in shapes)
        max_w = max(w for _, w in shapes)
        arrays = [pad_white(a, max_h, max_w) for a in arrays]
    return torch.from_numpy(np.stack(arrays))
