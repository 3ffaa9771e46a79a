"""vggtkit: VGGT (Visual Geometry Grounded Transformer) reconstruction toolkit."""

from vggtkit.config import VGGTConfig, tiny_config
from vggtkit.io.images import load_and_preprocess_images
from vggtkit.models.vggt import VGGT
from vggtkit.weights import CheckpointError

__version__ = "0.1.0"

__all__ = ["VGGT", "CheckpointError", "VGGTConfig", "__version__", "load_and_preprocess_images", "tiny_config"]
