"""One interface over the model families' image preprocessing, so the pipeline prepares frames for any model.

VGGT resizes to a 14-pixel grid ("crop": width = resolution; "pad": a white square), VGGT-Omega crops the aspect
ratio into [1:2, 2:1] and resizes to its patch grid ("balanced": about (resolution / patch)^2 patches; "max_size":
the longer side = resolution). :class:`Preprocessing` names one of these rules and gives, for an image of any
size, its layout, its pixels in model input form and the map from model pixels back to the original's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from PIL import Image

from vggtkit.io.images import PATCH_SIZE, original_from_model, preprocess_image, preprocess_layout
from vggtkit.io.omega_images import (
    OMEGA_MODES,
    omega_layout,
    omega_original_from_model,
    preprocess_omega_image,
)

__all__ = ["FAMILY_MODES", "FrameLayout", "Preprocessing"]

FAMILY_MODES: dict[str, tuple[str, ...]] = {"vggt": ("crop", "pad"), "omega": OMEGA_MODES}
"""The preprocessing modes of each model family, its default first."""


class FrameLayout(NamedTuple):
    """One image's model input size (``out_w`` x ``out_h``) and the family's own layout (to map pixels back)."""

    out_w: int
    out_h: int
    detail: tuple


@dataclass(frozen=True)
class Preprocessing:
    """How frames become model input for one model family.

    Attributes:
        family: "vggt" or "omega" (see :data:`FAMILY_MODES`).
        mode: one of the family's modes.
        resolution: VGGT: the input width (crop) or side (pad); VGGT-Omega: the resolution the patch count aims
            at (balanced) or the longer side (max_size); a positive multiple of ``patch_size``.
        patch_size: the model's patch side in pixels (VGGT's preprocessing works on a 14-pixel grid).
    """

    family: str
    mode: str
    resolution: int
    patch_size: int

    def __post_init__(self) -> None:
        if self.family not in FAMILY_MODES:
            raise ValueError(f"no image preprocessing for model family {self.family!r}")
        modes = FAMILY_MODES[self.family]
        if self.mode not in modes:
            name = "VGGT-Omega" if self.family == "omega" else "VGGT"
            raise ValueError(
                f"mode={self.mode!r} is not a {name} preprocessing mode; {name} models take "
                + " or ".join(f"mode={m!r}" for m in modes)
            )
        if self.family == "vggt" and self.patch_size != PATCH_SIZE:
            raise ValueError(
                f"the model's patch size is {self.patch_size}; VGGT image preprocessing uses {PATCH_SIZE}"
            )
        res, patch = self.resolution, self.patch_size
        if isinstance(res, bool) or not isinstance(res, int) or res < patch or res % patch:
            raise ValueError(
                f"resolution must be a positive multiple of {patch} for this model "
                f"(e.g. {max(1, round(518 / patch)) * patch}), got {res!r}"
            )

    def layout(self, name: str, width: int, height: int) -> FrameLayout:
        """Where a ``width`` x ``height`` image goes.

        Raises:
            ValueError: an image smaller than one patch, or too elongated for VGGT's rule (named, with the fix).
        """
        patch = self.patch_size
        if min(width, height) < patch:
            raise ValueError(
                f"image '{name}' is {width}x{height} pixels, smaller than one {patch}x{patch} patch; use images "
                f"of at least {patch} pixels per side"
            )
        if self.family == "omega":
            detail = omega_layout(width, height, self.mode, self.resolution, patch)  # type: ignore[arg-type]
            return FrameLayout(detail.out_w, detail.out_h, detail)
        detail = preprocess_layout(width, height, self.mode, self.resolution)  # type: ignore[arg-type]
        if detail.resized_w == 0 or detail.resized_h == 0:
            raise ValueError(
                f"image '{name}' ({width}x{height}) is too elongated: at {self.resolution} px its short side "
                f"rounds to zero {patch}-pixel patches; crop it or use a larger resolution "
                f"(resolution={self._smallest_resolution(width, height)})"
            )
        return FrameLayout(detail.out_w, detail.out_h, detail)

    def image(self, img: Image.Image) -> np.ndarray:
        """One RGB image as model input: float32 (3, H, W) in [0, 1]."""
        if self.family == "omega":
            return preprocess_omega_image(img, self.mode, self.resolution, self.patch_size)  # type: ignore[arg-type]
        return preprocess_image(img, self.mode, self.resolution)  # type: ignore[arg-type]

    def original_from_model(
        self, width: int, height: int, layout: FrameLayout, pad: tuple[int, int] = (0, 0)
    ) -> np.ndarray:
        """(3, 3) map from model pixels to those of the ``width`` x ``height`` original, after ``pad`` =
        (top, left) of batch padding."""
        if self.family == "omega":
            return omega_original_from_model(width, height, layout.detail, pad)
        return original_from_model(width, height, layout.detail, pad)

    def _smallest_resolution(self, width: int, height: int) -> int:
        """The smallest VGGT resolution at which the short side keeps one patch."""
        ratio = min(width, height) / max(width, height)
        resolution = math.ceil(0.5 / ratio) * self.patch_size
        while 0 in preprocess_layout(width, height, self.mode, resolution)[:2]:  # type: ignore[arg-type]
            resolution += self.patch_size
        return resolution
