"""Model families, one sub-package each."""

from vggtkit.models.vggt import VGGT, VGGTConfig

__all__ = ["VGGT", "VGGTConfig"]
