"""Put the frames' images next to camera exports (``images/``), as COLMAP, nerfstudio and 3DGS tools expect.

Source files that are plain 8-bit RGB are hard-linked (or copied) as they are; other frames (EXIF-rotated
photos, RGBA composited on white, grey or 16-bit images, decoded video frames) are written from the pixels the
model saw, under the same name. A frame whose original pixels are unavailable
(e.g. an official npz without image paths) gets the model-resolution image, and its camera is then given at
that resolution: intrinsics always describe the image file written.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vggtkit.reconstruction import Reconstruction
from vggtkit.utils.atomic import atomic_path

__all__ = ["FrameImage", "write_images"]

logger = logging.getLogger(__name__)

_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class FrameImage:
    """An image file written for a frame and the camera that goes with it.

    Attributes:
        path: the file in ``images/``.
        hw: its (height, width) in pixels.
        K: (3, 3) intrinsics for that file (OpenCV pixel centres).
        file_from_model: (3, 3) map from model pixels to the file's pixels.
        original: True when the file is at the original resolution.
    """

    path: Path
    hw: tuple[int, int]
    K: np.ndarray
    file_from_model: np.ndarray
    original: bool


def _usable_as_is(source: Path, hw: tuple[int, int]) -> bool:
    """True when the file stores exactly the pixels the model saw: 8-bit RGB, the same size, no EXIF rotation.
    (RGBA, grey, 16-bit or rotated files are written again as loaded, so every tool reads the same image.)"""
    try:
        with Image.open(source) as img:
            orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
            return img.mode == "RGB" and orientation in (0, 1) and (img.height, img.width) == hw
    except OSError:
        return False


def _link_or_copy(source: Path, target: Path) -> None:
    if target.exists() and target.samefile(source):
        return
    with atomic_path(target) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copy2(source, tmp)


def _save_pixels(rgb: np.ndarray, target: Path) -> None:
    fmt = Image.registered_extensions().get(target.suffix.lower(), "PNG")
    with atomic_path(target) as tmp:
        params = {"quality": 95} if fmt == "JPEG" else {}
        Image.fromarray(rgb).save(tmp, format=fmt, **params)


def _write_image(rec: Reconstruction, i: int, target: Path, colors: Callable[[], np.ndarray]) -> bool:
    """Write frame ``i``'s image to ``target``: the source file linked or copied when tools read it as the model
    did, else its original pixels encoded, else (no original pixels) the model-resolution image from
    ``colors()``. Returns whether the file is at the original resolution."""
    hw = (int(rec.original_hw[i, 0]), int(rec.original_hw[i, 1]))
    source = Path(rec.image_paths[i]) if rec.image_paths[i] else None
    if source is not None and target.exists() and source.is_file() and target.samefile(source):
        if not _usable_as_is(source, hw):  # never overwrite a user's file (input folder == output folder)
            logger.warning(
                "%s is the source image itself; left unchanged although tools may read it "
                "differently (EXIF rotation, alpha, 16-bit)",
                target,
            )
        return True
    if source is not None and source.is_file() and _usable_as_is(source, hw):
        _link_or_copy(source, target)
        return True
    pixels = rec.source_image(i)
    if pixels is None:
        _save_pixels(colors()[i], target)
        return False
    _save_pixels(pixels, target)
    return True


def write_images(rec: Reconstruction, images_dir: str | os.PathLike[str]) -> list[FrameImage]:
    """Write (link, copy or encode) every frame's image as ``images_dir / rec.names[i]``.

    Returns:
        One :class:`FrameImage` per frame, in frame order.
    """
    images_dir = Path(images_dir)
    images_dir.mkdir(parents=True, exist_ok=True)
    colors = functools.cache(rec.colors)  # computed once, only if a frame needs it
    out: list[FrameImage] = []
    fallback: list[str] = []
    for i, name in enumerate(rec.names):
        target = images_dir / name
        if _write_image(rec, i, target, colors):
            hw = (int(rec.original_hw[i, 0]), int(rec.original_hw[i, 1]))
            out.append(FrameImage(target, hw, rec.intrinsic_original[i], rec.original_from_model[i], True))
        else:
            fallback.append(name)
            out.append(FrameImage(target, rec.model_hw, rec.intrinsic[i], np.eye(3), False))
    if fallback:
        logger.warning(
            "original images unavailable for %d frame(s) (%s%s); wrote them at the model resolution %dx%d with "
            "matching cameras",
            len(fallback),
            ", ".join(fallback[:3]),
            ", ..." if len(fallback) > 3 else "",
            rec.model_hw[1],
            rec.model_hw[0],
        )
    return out
