"""Model definitions."""

from vggtkit.models.aggregator import Aggregator
from vggtkit.models.vggt import VGGT

__all__ = ["Aggregator", "VGGT"]
