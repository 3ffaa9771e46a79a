"""Input loading: images (and later video frames) preprocessed for VGGT."""

from __future__ import annotations

from .images import PATCH_SIZE, PreprocessMode, load_and_preprocess_images, load_rgb_image, preprocess_image

__all__ = ["PATCH_SIZE", "PreprocessMode", "load_and_preprocess_images", "load_rgb_image", "preprocess_image"]
