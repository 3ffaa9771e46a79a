"""Projection of world points into pinhole cameras; numpy or torch."""

from __future__ import annotations

import numpy as np

from ._array import ArrayT, is_numpy, swap_last2
from .se3 import transform_points

__all__ = ["project_points"]


def project_points(points_world: ArrayT, cam_from_world: ArrayT, K: ArrayT) -> tuple[ArrayT, ArrayT]:
    """Project world points to pixel coordinates.

    Uses the same pixel convention as :func:`depth_to_cam_points` (integer pixel indices at pixel centres),
    so projecting unprojected depth returns the pixel grid. Points at depth 0 get non-finite pixels; mask
    them (and points behind the camera) with ``depth > 0``.

    Args:
        points_world: (..., N, 3) points in the world frame.
        cam_from_world: (..., 3, 4) or (..., 4, 4) extrinsics (OpenCV axes).
        K: (..., 3, 3) pinhole intrinsics in pixels.

    Returns:
        ``(uv, depth)``: (..., N, 2) pixel coordinates ``(x, y)`` and (..., N) camera-frame depths ``z``.
    """
    points_cam = transform_points(cam_from_world, points_world)
    homog = points_cam @ swap_last2(K)
    depth = points_cam[..., 2]
    if is_numpy(homog):
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = homog[..., :2] / homog[..., 2:3]
    else:
        uv = homog[..., :2] / homog[..., 2:3]
    return uv, depth
