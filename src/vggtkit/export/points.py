"""Which pixels become points: confidence percentile, frame filter, background and sky masks, padding.

Shared by the GLB, PLY and COLMAP exports so that all of them agree. Padding pixels (white borders added by
pad mode or by mixing aspect ratios) and points with non-finite coordinates are never exported, so no point
gets a colour that is not the image's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from vggtkit.export.options import ExportOptions
from vggtkit.reconstruction import Reconstruction

__all__ = ["PointSet", "point_mask", "select_points"]

logger = logging.getLogger(__name__)

_MIN_CONF = 1e-5  # as the official demo: points at (near) zero confidence are always dropped
_BLACK_SUM = 16  # R + G + B below this is black background
_WHITE_MIN = 240  # R, G and B all above this is white background


@dataclass
class PointSet:
    """Selected points: xyz (N, 3) float32 world coordinates, rgb (N, 3) uint8, conf (N,) float32,
    frame (N,) int32 frame index, pixel (N, 2) int32 model pixel (x, y)."""

    xyz: np.ndarray
    rgb: np.ndarray
    conf: np.ndarray
    frame: np.ndarray
    pixel: np.ndarray

    def __len__(self) -> int:
        return len(self.xyz)


def _check_frame(rec: Reconstruction, frame: int | None) -> None:
    if frame is not None and frame >= rec.num_frames:
        raise ValueError(
            f"frame {frame} is out of range: the reconstruction has frames 0..{rec.num_frames - 1}"
        )


def point_mask(
    rec: Reconstruction,
    conf: np.ndarray,
    options: ExportOptions,
    keep: np.ndarray | None = None,
    points: np.ndarray | None = None,
) -> np.ndarray:
    """(S, H, W) bool mask of the pixels to export.

    The threshold is the ``options.conf_threshold`` percentile of ``conf`` over the image pixels (padding
    excluded) of the selected frames; a pixel is kept when its confidence is at least that and above 1e-5,
    it is not masked as black / white background, ``keep`` is True there (e.g. not sky), and its point is finite.

    Args:
        rec: the reconstruction.
        conf: (S, H, W) confidence of the chosen branch.
        options: thresholds and masks.
        keep: optional (S, H, W) bool mask of pixels allowed (False: drop, e.g. sky).
        points: optional (S, H, W, 3) points whose non-finite entries are dropped.
    """
    _check_frame(rec, options.frame)
    mask = rec.content_mask()
    if options.frame is not None:
        only = np.zeros(rec.num_frames, dtype=bool)
        only[options.frame] = True
        mask &= only[:, None, None]
    mask &= np.isfinite(conf)
    if points is not None:
        mask &= np.isfinite(points).all(axis=-1)
    if options.conf_threshold > 0 and mask.any():
        threshold = float(np.percentile(conf[mask], options.conf_threshold))
        mask &= conf >= threshold
    mask &= conf > _MIN_CONF
    if options.mask_black or options.mask_white:
        rgb = rec.colors().astype(np.int32)
        if options.mask_black:
            mask &= rgb.sum(axis=-1) >= _BLACK_SUM
        if options.mask_white:
            mask &= ~(rgb > _WHITE_MIN).all(axis=-1)
    if keep is not None:
        if keep.shape != mask.shape:
            raise ValueError(f"keep mask must have shape {mask.shape}, got {keep.shape}")
        mask &= keep
    return mask


def select_points(rec: Reconstruction, options: ExportOptions, keep: np.ndarray | None = None) -> PointSet:
    """The points to export for ``options`` (see :func:`point_mask`), with colours from the images."""
    xyz, conf = rec.points(options.branch)
    mask = point_mask(rec, conf, options, keep, xyz)
    frame, v, u = np.nonzero(mask)
    points = PointSet(
        xyz=xyz[mask].astype(np.float32),
        rgb=rec.colors()[mask],
        conf=conf[mask].astype(np.float32),
        frame=frame.astype(np.int32),
        pixel=np.stack([u, v], axis=-1).astype(np.int32),
    )
    if len(points) == 0:
        logger.warning(
            "no point passes the filters (conf_threshold=%g%s); lower conf_threshold or turn off the masks",
            options.conf_threshold,
            f", frame={options.frame}" if options.frame is not None else "",
        )
    return points
