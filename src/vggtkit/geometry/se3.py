"""Rigid transforms (SE(3)) stored as (..., 3, 4) or (..., 4, 4) matrices; numpy or torch."""

from __future__ import annotations

import numpy as np
import torch

from ._array import ArrayT, is_numpy, swap_last2

__all__ = ["closed_form_inverse_se3", "transform_points"]


def closed_form_inverse_se3(
    se3: ArrayT,
    R: ArrayT | None = None,
    T: ArrayT | None = None,
) -> ArrayT:
    """Invert rigid transforms in closed form: ``[R | t]^-1 = [R^T | -R^T t]``.

    Leading dimensions are free (upstream requires exactly one). The dtype follows upstream: a torch
    result has the dtype and device of ``R``; a numpy result is float64 (upstream builds it on
    ``np.eye(4)``), with the entries computed in the input's precision.

    Args:
        se3: (..., 4, 4) or (..., 3, 4) transforms, e.g. ``cam_from_world``.
        R: optional (..., 3, 3) rotations to use instead of ``se3[..., :3, :3]``.
        T: optional (..., 3, 1) or (..., 3) translations to use instead of ``se3[..., :3, 3]``.

    Returns:
        (..., 4, 4) inverse transforms, e.g. ``world_from_cam``.

    Raises:
        ValueError: if ``se3`` is not (..., 4, 4) or (..., 3, 4).
    """
    if tuple(se3.shape[-2:]) not in ((4, 4), (3, 4)):
        raise ValueError(f"se3 must be (..., 4, 4) or (..., 3, 4), got shape {tuple(se3.shape)}")
    if R is None:
        R = se3[..., :3, :3]
    if T is None:
        T = se3[..., :3, 3:]
    elif T.ndim == R.ndim - 1:  # (..., 3) -> (..., 3, 1)
        T = T[..., None]
    r_inv = swap_last2(R)
    t_inv = -(r_inv @ T)
    batch = tuple(R.shape[:-2])
    if is_numpy(R):
        out = np.broadcast_to(np.eye(4), (*batch, 4, 4)).copy()
    else:
        out = torch.eye(4, dtype=R.dtype, device=R.device).expand(*batch, 4, 4).clone()
    out[..., :3, :3] = r_inv
    out[..., :3, 3:] = t_inv
    return out


def transform_points(a_from_b: ArrayT, pts_b: ArrayT) -> ArrayT:
    """Apply rigid (or affine) transforms to 3-D points.

    Args:
        a_from_b: (..., 3, 4) or (..., 4, 4) transforms from frame b to frame a.
        pts_b: (..., N, 3) points in frame b; leading dimensions broadcast against ``a_from_b``'s.

    Returns:
        (..., N, 3) points in frame a.
    """
    return pts_b @ swap_last2(a_from_b[..., :3, :3]) + a_from_b[..., None, :3, 3]
