"""Rotation matrices and unit quaternions in scalar-last order (``quat_xyzw``).

Conventions follow upstream VGGT: a quaternion ``(x, y, z, w)`` stores the vector part first and the real
part last, and :func:`mat_to_quat` returns the representative with ``w >= 0``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["mat_to_quat", "quat_to_mat", "standardize_quat"]


def quat_to_mat(quat_xyzw: Tensor) -> Tensor:
    """Convert scalar-last quaternions to rotation matrices.

    Non-unit quaternions are normalised implicitly (through ``s = 2 / |q|^2``).

    Args:
        quat_xyzw: (..., 4) quaternions ``(x, y, z, w)``.

    Returns:
        (..., 3, 3) rotation matrices.
    """
    x, y, z, w = quat_xyzw.unbind(-1)
    s = 2.0 / (quat_xyzw * quat_xyzw).sum(-1)
    rows = (
        1 - s * (y * y + z * z),
        s * (x * y - z * w),
        s * (x * z + y * w),
        s * (x * y + z * w),
        1 - s * (x * x + z * z),
        s * (y * z - x * w),
        s * (x * z - y * w),
        s * (y * z + x * w),
        1 - s * (x * x + y * y),
    )
    return torch.stack(rows, dim=-1).reshape(*quat_xyzw.shape[:-1], 3, 3)


def standardize_quat(quat_xyzw: Tensor) -> Tensor:
    """Return the representative of each quaternion with a non-negative real part ``w``.

    Args:
        quat_xyzw: (..., 4) quaternions ``(x, y, z, w)``.

    Returns:
        (..., 4) quaternions with ``w >= 0``.
    """
    return torch.where(quat_xyzw[..., 3:4] < 0, -quat_xyzw, quat_xyzw)


def _sqrt_nonneg(x: Tensor) -> Tensor:
    """``sqrt(max(x, 0))`` with a zero (not infinite) gradient where ``x <= 0``."""
    positive = x > 0
    safe = torch.where(positive, x, torch.ones_like(x))
    return torch.where(positive, torch.sqrt(safe), torch.zeros_like(x))


def mat_to_quat(rot: Tensor) -> Tensor:
    """Convert rotation matrices to scalar-last unit quaternions with ``w >= 0``.

    Four candidate quaternions are computed, each well conditioned when its own component is large; the one
    whose component has the largest magnitude is returned.

    Args:
        rot: (..., 3, 3) rotation matrices.

    Returns:
        (..., 4) quaternions ``(x, y, z, w)``.

    Raises:
        ValueError: if the last two dimensions are not 3x3.
    """
    if rot.shape[-2:] != (3, 3):
        raise ValueError(f"mat_to_quat expects (..., 3, 3) matrices, got shape {tuple(rot.shape)}")
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = rot.reshape(*rot.shape[:-2], 9).unbind(-1)
    # Magnitudes of (2w, 2x, 2y, 2z): each is sqrt of a combination of the diagonal.
    mag = _sqrt_nonneg(
        torch.stack(
            (
                1.0 + m00 + m11 + m22,
                1.0 + m00 - m11 - m22,
                1.0 - m00 + m11 - m22,
                1.0 - m00 - m11 + m22,
            ),
            dim=-1,
        )
    )
    # Candidate c (in w, x, y, z order) scaled by 4 * q_c; row c is valid when q_c is not small.
    cand_wxyz = torch.stack(
        (
            torch.stack((mag[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01), dim=-1),
            torch.stack((m21 - m12, mag[..., 1] ** 2, m10 + m01, m02 + m20), dim=-1),
            torch.stack((m02 - m20, m10 + m01, mag[..., 2] ** 2, m12 + m21), dim=-1),
            torch.stack((m10 - m01, m20 + m02, m21 + m12, mag[..., 3] ** 2), dim=-1),
        ),
        dim=-2,
    )
    floor = torch.tensor(0.1, dtype=mag.dtype, device=mag.device)
    cand_wxyz = cand_wxyz / (2.0 * torch.maximum(mag, floor)[..., None])
    best = mag.argmax(dim=-1)
    index = best[..., None, None].expand(*best.shape, 1, 4)
    quat_wxyz = torch.gather(cand_wxyz, -2, index).squeeze(-2)
    quat_xyzw = torch.cat((quat_wxyz[..., 1:], quat_wxyz[..., :1]), dim=-1)
    return standardize_quat(quat_xyzw)
