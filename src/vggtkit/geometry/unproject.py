"""Depth maps to camera-frame and world-frame point maps (pinhole, integer pixel coordinates)."""

from __future__ import annotations

import numpy as np
import torch

from ._array import ArrayT, is_numpy, to_numpy
from .se3 import closed_form_inverse_se3, transform_points

__all__ = ["depth_to_cam_points", "unproject_depth_map_to_point_map"]


def depth_to_cam_points(depth: ArrayT, K: ArrayT) -> ArrayT:
    """Back-project depth maps to camera-frame points (OpenCV axes: x right, y down, z forward).

    Pixel ``(u, v)`` is the integer column/row index (the centre of the top-left pixel is at (0, 0)), so
    ``X = ((u - c_x) d / f_x, (v - c_y) d / f_y, d)``. Skew is ignored.

    Args:
        depth: (..., H, W) depth along the optical axis.
        K: (..., 3, 3) pinhole intrinsics in pixels, leading dims matching ``depth``'s.

    Returns:
        (..., H, W, 3) camera-frame points, in ``depth``'s array type and dtype.
    """
    height, width = depth.shape[-2:]
    fx = K[..., 0, 0][..., None, None]
    fy = K[..., 1, 1][..., None, None]
    cx = K[..., 0, 2][..., None, None]
    cy = K[..., 1, 2][..., None, None]
    if is_numpy(depth):
        u = np.arange(width)[None, :]
        v = np.arange(height)[:, None]
        x = (u - cx) * depth / fx
        y = (v - cy) * depth / fy
        return np.stack(np.broadcast_arrays(x, y, depth), axis=-1).astype(depth.dtype, copy=False)
    u = torch.arange(width, device=depth.device, dtype=depth.dtype)[None, :]
    v = torch.arange(height, device=depth.device, dtype=depth.dtype)[:, None]
    x = (u - cx) * depth / fx
    y = (v - cy) * depth / fy
    return torch.stack(torch.broadcast_tensors(x, y, depth), dim=-1)


def unproject_depth_map_to_point_map(
    depth_map: np.ndarray | torch.Tensor,
    extrinsics_cam: np.ndarray | torch.Tensor,
    intrinsics_cam: np.ndarray | torch.Tensor,
) -> np.ndarray:
    """Unproject per-frame depth maps to world-frame point maps.

    Follows upstream numerics: camera points are computed in float64 from the integer pixel grid and
    rounded to float32, then mapped by ``world_from_cam = closed_form_inverse_se3(cam_from_world)``; the
    result is float64, as upstream's (its inverse is built on ``np.eye``).

    Args:
        depth_map: (S, H, W) or (S, H, W, 1) depths, numpy or torch.
        extrinsics_cam: (S, 3, 4) or (S, 4, 4) ``cam_from_world`` matrices, numpy or torch.
        intrinsics_cam: (S, 3, 3) pinhole intrinsics in pixels, numpy or torch.

    Returns:
        (S, H, W, 3) float64 numpy world points.

    Raises:
        ValueError: on inconsistent shapes.
    """
    depth = to_numpy(depth_map)
    extrinsics = to_numpy(extrinsics_cam)
    intrinsics = to_numpy(intrinsics_cam)
    if depth.ndim == 4 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    if depth.ndim != 3:
        raise ValueError(f"depth_map must be (S, H, W) or (S, H, W, 1), got {depth_map.shape}")
    n_frames = depth.shape[0]
    if extrinsics.shape not in ((n_frames, 3, 4), (n_frames, 4, 4)):
        raise ValueError(f"extrinsics_cam must be ({n_frames}, 3, 4), got {extrinsics.shape}")
    if intrinsics.shape != (n_frames, 3, 3):
        raise ValueError(f"intrinsics_cam must be ({n_frames}, 3, 3), got {intrinsics.shape}")

    cam_points = depth_to_cam_points(depth.astype(np.float64), intrinsics.astype(np.float64))
    cam_points = cam_points.astype(np.float32).reshape(n_frames, -1, 3)
    world_from_cam = closed_form_inverse_se3(extrinsics)
    world_points = transform_points(world_from_cam.astype(np.float64), cam_points.astype(np.float64))
    return world_points.reshape(*depth.shape, 3)
