"""Prediction heads: camera, DPT (depth / point maps) and tracks."""

from vggtkit.models.heads.camera import CameraHead
from vggtkit.models.heads.dpt import DPTHead
from vggtkit.models.heads.track import TrackHead

__all__ = ["CameraHead", "DPTHead", "TrackHead"]
