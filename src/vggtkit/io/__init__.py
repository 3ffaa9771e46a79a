"""Input loading: which files are images or videos, image preprocessing for VGGT, video frame sampling."""

from __future__ import annotations

from .images import PATCH_SIZE, PreprocessMode, load_and_preprocess_images, load_rgb_image, preprocess_image
from .paths import IMAGE_SUFFIXES, VIDEO_SUFFIXES, is_image_path, is_video_path, natural_key

__all__ = [
    "IMAGE_SUFFIXES",
    "PATCH_SIZE",
    "VIDEO_SUFFIXES",
    "PreprocessMode",
    "is_image_path",
    "is_video_path",
    "load_and_preprocess_images",
    "load_rgb_image",
    "natural_key",
    "preprocess_image",
]
