"""Prediction heads: camera, DPT (depth / point maps) and tracks."""

from vggtkit.models.vggt.heads.camera import CameraHead
from vggtkit.models.vggt.heads.dpt import DPTHead
from vggtkit.models.vggt.heads.track import TrackHead

__all__ = ["CameraHead", "DPTHead", "TrackHead"]
