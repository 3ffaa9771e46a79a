"""Evaluation metrics: relative camera pose accuracy and AUC, depth errors, point-cloud accuracy/completeness."""

from __future__ import annotations

from vggtkit.metrics.depth import depth_metrics, median_scale
from vggtkit.metrics.points import point_cloud_metrics, umeyama
from vggtkit.metrics.pose import pose_auc, relative_pose_errors

__all__ = [
    "depth_metrics",
    "median_scale",
    "point_cloud_metrics",
    "pose_auc",
    "relative_pose_errors",
    "umeyama",
]
