"""Camera geometry: rotations, pose encodings, rigid transforms, projection and unprojection.

Conventions: extrinsics are ``cam_from_world`` (..., 3, 4) in OpenCV axes (x right, y down, z forward);
intrinsics ``K`` are in pixels with integer pixel indices at pixel centres; quaternions are ``quat_xyzw``.
"""

from __future__ import annotations

from .pose_encoding import (
    POSE_ENCODING_TYPES,
    encoding_to_camera,
    extri_intri_to_pose_encoding,
    pose_encoding_to_extri_intri,
)
from .projection import project_points
from .rotation import mat_to_quat, quat_to_mat, standardize_quat
from .se3 import closed_form_inverse_se3, transform_points
from .unproject import depth_to_cam_points, unproject_depth_map_to_point_map

__all__ = [
    "POSE_ENCODING_TYPES",
    "closed_form_inverse_se3",
    "depth_to_cam_points",
    "encoding_to_camera",
    "extri_intri_to_pose_encoding",
    "mat_to_quat",
    "pose_encoding_to_extri_intri",
    "project_points",
    "quat_to_mat",
    "standardize_quat",
    "transform_points",
    "unproject_depth_map_to_point_map",
]
