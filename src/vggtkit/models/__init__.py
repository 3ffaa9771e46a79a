"""Model families, one sub-package each, and one loader for all of them."""

from vggtkit.models.omega import VGGTOmega, VGGTOmegaConfig
from vggtkit.models.registry import FAMILIES, Family, detect_family, family_of_config, from_pretrained
from vggtkit.models.vggt import VGGT, VGGTConfig

__all__ = [
    "FAMILIES",
    "VGGT",
    "Family",
    "VGGTConfig",
    "VGGTOmega",
    "VGGTOmegaConfig",
    "detect_family",
    "family_of_config",
    "from_pretrained",
]
