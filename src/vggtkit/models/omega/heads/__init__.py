"""VGGT-Omega's heads: single-shot camera, dense depth, text alignment."""

from vggtkit.models.omega.heads.camera import CameraHead
from vggtkit.models.omega.heads.dense import DenseHead
from vggtkit.models.omega.heads.text import TextAlignmentHead

__all__ = ["CameraHead", "DenseHead", "TextAlignmentHead"]
