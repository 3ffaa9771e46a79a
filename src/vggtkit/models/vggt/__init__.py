"""VGGT (Wang et al., CVPR 2025): configuration, aggregator, heads and the model."""

from vggtkit.models.vggt.config import VGGTConfig, tiny_config
from vggtkit.models.vggt.model import VGGT

__all__ = ["VGGT", "VGGTConfig", "tiny_config"]
