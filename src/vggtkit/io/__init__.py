"""Input loading: which files are images or videos, image preprocessing for VGGT and VGGT-Omega, video frame
sampling."""

from __future__ import annotations

from .images import PATCH_SIZE, PreprocessMode, load_and_preprocess_images, load_rgb_image, preprocess_image
from .omega_images import OMEGA_MODES, OmegaMode, load_and_preprocess_omega_images, preprocess_omega_image
from .paths import IMAGE_SUFFIXES, VIDEO_SUFFIXES, is_image_path, is_video_path, natural_key

__all__ = [
    "IMAGE_SUFFIXES",
    "OMEGA_MODES",
    "PATCH_SIZE",
    "VIDEO_SUFFIXES",
    "OmegaMode",
    "PreprocessMode",
    "is_image_path",
    "is_video_path",
    "load_and_preprocess_images",
    "load_and_preprocess_omega_images",
    "load_rgb_image",
    "natural_key",
    "preprocess_image",
    "preprocess_omega_image",
]
