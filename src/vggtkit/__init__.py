"""vggtkit: VGGT (Visual Geometry Grounded Transformer) and VGGT-Omega reconstruction toolkit."""

from vggtkit.io.images import load_and_preprocess_images
from vggtkit.models.omega import VGGTOmega, VGGTOmegaConfig
from vggtkit.models.registry import from_pretrained
from vggtkit.models.vggt.config import VGGTConfig, tiny_config
from vggtkit.models.vggt.model import VGGT
from vggtkit.pipeline import Reconstruction, reconstruct
from vggtkit.weights import CheckpointError

__version__ = "0.1.0"

__all__ = [
    "VGGT",
    "CheckpointError",
    "Reconstruction",
    "VGGTConfig",
    "VGGTOmega",
    "VGGTOmegaConfig",
    "__version__",
    "from_pretrained",
    "load_and_preprocess_images",
    "reconstruct",
    "tiny_config",
]
