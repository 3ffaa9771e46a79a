"""Keypoints and descriptors at each image's original resolution (OpenCV SIFT, RootSIFT descriptors)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from vggtkit.reconstruction import Reconstruction

__all__ = ["Features", "FrameImages", "detect_sift", "frame_images"]

logger = logging.getLogger(__name__)


@dataclass
class Features:
    """Keypoints of one image.

    Attributes:
        xy: (N, 2) float64 keypoint positions (x, y) in original-image pixels, OpenCV convention (the centre
            of the top-left pixel at (0, 0)).
        descriptors: (N, D) float32 unit-length descriptors.
    """

    xy: np.ndarray
    descriptors: np.ndarray

    def __len__(self) -> int:
        return len(self.xy)


@dataclass
class FrameImages:
    """The pixels matching is done on, one RGB uint8 array per frame, and how they map to original pixels.

    Attributes:
        rgb: S arrays (h, w, 3) uint8.
        original_from_image: (S, 3, 3) map from these images' pixels to original-image pixels (identity when
            the originals are available; the model's ``original_from_model`` otherwise).
        at_original: per frame, True when the image is the original.
    """

    rgb: list[np.ndarray]
    original_from_image: np.ndarray
    at_original: list[bool]


def frame_images(rec: Reconstruction) -> FrameImages:
    """The original images of a reconstruction, or its model-resolution images where a file is missing."""
    rgb: list[np.ndarray] = []
    maps = np.empty((rec.num_frames, 3, 3))
    at_original: list[bool] = []
    model_rgb = None
    for i in range(rec.num_frames):
        image = rec.source_image(i)
        at_original.append(image is not None)
        if image is None:
            model_rgb = rec.colors() if model_rgb is None else model_rgb
            image, maps[i] = model_rgb[i], rec.original_from_model[i]
        else:
            maps[i] = np.eye(3)
        rgb.append(np.ascontiguousarray(image))
    missing = [rec.names[i] for i, ok in enumerate(at_original) if not ok]
    if missing:
        logger.warning(
            "original images not found for %d frame(s) (%s%s); matching those at the model resolution",
            len(missing),
            ", ".join(missing[:3]),
            ", ..." if len(missing) > 3 else "",
        )
    return FrameImages(rgb, maps, at_original)


def _root_sift(descriptors: np.ndarray) -> np.ndarray:
    """RootSIFT (Arandjelovic and Zisserman 2012): L1-normalise, square root; the result has unit L2 norm."""
    d = descriptors.astype(np.float32)
    d /= np.abs(d).sum(axis=1, keepdims=True) + 1e-12
    return np.sqrt(d)


def detect_sift(
    rgb: np.ndarray,
    original_from_image: np.ndarray,
    max_keypoints: int,
    contrast_threshold: float,
    mask: np.ndarray | None = None,
) -> Features:
    """SIFT keypoints of one image, returned in original-image pixels.

    Args:
        rgb: (h, w, 3) uint8 image.
        original_from_image: (3, 3) map of its pixels to original pixels.
        max_keypoints: the strongest keypoints kept.
        contrast_threshold: OpenCV's ``contrastThreshold``.
        mask: optional (h, w) bool, where keypoints may lie.
    """
    import cv2

    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    sift = cv2.SIFT_create(nfeatures=max_keypoints, contrastThreshold=contrast_threshold)
    cv_mask = None if mask is None else mask.astype(np.uint8) * 255
    keypoints, descriptors = sift.detectAndCompute(gray, cv_mask)
    if descriptors is None or not keypoints:
        return Features(np.zeros((0, 2)), np.zeros((0, 128), np.float32))
    xy = np.array([k.pt for k in keypoints], dtype=np.float64)
    # OpenCV repeats a keypoint for each dominant orientation; one position is one observation.
    _, first = np.unique(np.round(xy, 1), axis=0, return_index=True)
    first = np.sort(first)
    xy, descriptors = xy[first], descriptors[first]
    a = original_from_image
    xy = xy * np.array([a[0, 0], a[1, 1]]) + np.array([a[0, 2], a[1, 2]])
    return Features(xy, _root_sift(descriptors))
