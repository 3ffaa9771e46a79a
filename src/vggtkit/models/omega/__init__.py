"""VGGT-Omega (facebookresearch/vggt-omega): configuration, aggregator, heads and the model."""

from vggtkit.models.omega.config import VGGTOmegaConfig, omega_preset_config
from vggtkit.models.omega.model import VGGTOmega

__all__ = ["VGGTOmega", "VGGTOmegaConfig", "omega_preset_config"]
