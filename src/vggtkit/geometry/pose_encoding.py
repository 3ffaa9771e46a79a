"""Camera pose encoding ``absT_quaR_FoV``: the 9-vector predicted by VGGT's camera head.

Layout of the last dimension: ``[t (3), quat_xyzw (4), fov_h, fov_w]`` where ``t`` and the quaternion
describe ``cam_from_world`` (OpenCV axes) and the fields of view are in radians. Intrinsics are pinhole
with the principal point at the image centre ``(W/2, H/2)`` in pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .rotation import mat_to_quat, quat_to_mat

__all__ = [
    "POSE_ENCODING_TYPES",
    "encoding_to_camera",
    "extri_intri_to_pose_encoding",
    "pose_encoding_to_extri_intri",
]

POSE_ENCODING_TYPES = ("absT_quaR_FoV",)
_POSE_DIM = 9

ImageSizeHW = Sequence[int] | np.ndarray | Tensor


def _check_type(pose_encoding_type: str) -> None:
    if pose_encoding_type not in POSE_ENCODING_TYPES:
        raise ValueError(
            f"unknown pose_encoding_type {pose_encoding_type!r}; supported: {', '.join(POSE_ENCODING_TYPES)}"
        )


def _image_hw(image_size_hw: ImageSizeHW | None, caller: str) -> tuple[float, float]:
    if image_size_hw is None:
        raise ValueError(
            f"{caller} needs image_size_hw=(H, W) in pixels to convert between focal length and field of view"
        )
    hw = [float(v) for v in (image_size_hw.tolist() if hasattr(image_size_hw, "tolist") else image_size_hw)]
    if len(hw) != 2 or min(hw) <= 0:
        raise ValueError(f"image_size_hw must be two positive numbers (H, W), got {image_size_hw!r}")
    return hw[0], hw[1]


def extri_intri_to_pose_encoding(
    extrinsics: Tensor,
    intrinsics: Tensor,
    image_size_hw: ImageSizeHW | None = None,
    pose_encoding_type: str = "absT_quaR_FoV",
) -> Tensor:
    """Encode camera extrinsics and intrinsics as VGGT pose encodings.

    Args:
        extrinsics: (..., 3, 4) ``cam_from_world`` matrices ``[R | t]``.
        intrinsics: (..., 3, 3) pinhole matrices ``K`` in pixels.
        image_size_hw: image size ``(H, W)`` in pixels, used to turn focal lengths into fields of view.
        pose_encoding_type: only ``"absT_quaR_FoV"`` is supported.

    Returns:
        (..., 9) float32 encodings ``[t, quat_xyzw, fov_h, fov_w]`` with
        ``fov_h = 2 atan(H / 2 / f_y)`` and ``fov_w = 2 atan(W / 2 / f_x)``.

    Raises:
        ValueError: on an unknown encoding type, a missing image size or badly shaped inputs.
    """
    _check_type(pose_encoding_type)
    height, width = _image_hw(image_size_hw, "extri_intri_to_pose_encoding")
    extrinsics = torch.as_tensor(extrinsics)
    intrinsics = torch.as_tensor(intrinsics)
    if extrinsics.shape[-2:] not in ((3, 4), (4, 4)):
        raise ValueError(f"extrinsics must be (..., 3, 4) or (..., 4, 4), got {tuple(extrinsics.shape)}")
    if intrinsics.shape[-2:] != (3, 3):
        raise ValueError(f"intrinsics must be (..., 3, 3), got {tuple(intrinsics.shape)}")
    quat_xyzw = mat_to_quat(extrinsics[..., :3, :3])
    t = extrinsics[..., :3, 3]
    fov_h = 2 * torch.atan((height / 2) / intrinsics[..., 1, 1])
    fov_w = 2 * torch.atan((width / 2) / intrinsics[..., 0, 0])
    return torch.cat((t, quat_xyzw, fov_h[..., None], fov_w[..., None]), dim=-1).float()


def pose_encoding_to_extri_intri(
    pose_encoding: Tensor,
    image_size_hw: ImageSizeHW | None = None,
    pose_encoding_type: str = "absT_quaR_FoV",
    build_intrinsics: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """Decode VGGT pose encodings into extrinsics and (optionally) intrinsics.

    Any number of leading dimensions is accepted (upstream requires exactly two).

    Args:
        pose_encoding: (..., 9) encodings ``[t, quat_xyzw, fov_h, fov_w]``.
        image_size_hw: image size ``(H, W)`` in pixels; required when ``build_intrinsics`` is True.
        pose_encoding_type: only ``"absT_quaR_FoV"`` is supported.
        build_intrinsics: whether to build ``K``; when False the second return value is None.

    Returns:
        ``(extrinsics, intrinsics)``: (..., 3, 4) ``cam_from_world`` matrices and (..., 3, 3) pinhole
        matrices with ``f_y = (H/2) / tan(fov_h/2)``, ``f_x = (W/2) / tan(fov_w/2)`` and the principal
        point at ``(W/2, H/2)``, in the encoding's dtype and device (or None).

    Raises:
        ValueError: on an unknown encoding type, a last dimension other than 9, or a missing image size.
    """
    _check_type(pose_encoding_type)
    pose_encoding = torch.as_tensor(pose_encoding)
    if pose_encoding.ndim == 0 or pose_encoding.shape[-1] != _POSE_DIM:
        raise ValueError(
            f"pose_encoding must have last dimension {_POSE_DIM} ([t, quat_xyzw, fov_h, fov_w]), "
            f"got shape {tuple(pose_encoding.shape)}"
        )
    if build_intrinsics:
        height, width = _image_hw(image_size_hw, "pose_encoding_to_extri_intri")
    t = pose_encoding[..., :3]
    rot = quat_to_mat(pose_encoding[..., 3:7])
    extrinsics = torch.cat((rot, t[..., None]), dim=-1)
    if not build_intrinsics:
        return extrinsics, None

    fov_h = pose_encoding[..., 7]
    fov_w = pose_encoding[..., 8]
    intrinsics = pose_encoding.new_zeros((*pose_encoding.shape[:-1], 3, 3))
    intrinsics[..., 0, 0] = (width / 2.0) / torch.tan(fov_w / 2.0)
    intrinsics[..., 1, 1] = (height / 2.0) / torch.tan(fov_h / 2.0)
    intrinsics[..., 0, 2] = width / 2
    intrinsics[..., 1, 2] = height / 2
    intrinsics[..., 2, 2] = 1.0
    return extrinsics, intrinsics


def encoding_to_camera(
    pose_encoding: Tensor, image_size_hw: ImageSizeHW | None = None, build_intrinsics: bool = True
) -> tuple[Tensor, Tensor | None]:
    """VGGT-Omega's name for :func:`pose_encoding_to_extri_intri`: the same 9-D encoding and the same maths (the
    families differ only in the camera head's field-of-view activation, which the encoding already includes).

    Args:
        pose_encoding: (..., 9) encodings ``[t, quat_xyzw, fov_h, fov_w]``.
        image_size_hw: image size ``(H, W)`` in pixels (the model input's), required for the intrinsics.
        build_intrinsics: whether to build ``K``.

    Returns:
        ``(cam_from_world (..., 3, 4), K (..., 3, 3) or None)``.
    """
    return pose_encoding_to_extri_intri(pose_encoding, image_size_hw, build_intrinsics=build_intrinsics)
