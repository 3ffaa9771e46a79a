"""Which files are images or videos, and the order in which files are read.

The one list of image and video suffixes the pipeline, the command line, the web demo and the scene folders
use. Suffixes only decide where a folder is listed; the content is checked when a file is decoded.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = [
    "BROWSER_IMAGE_SUFFIXES",
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "is_image_path",
    "is_video_path",
    "natural_key",
]

# Formats web browsers display as they are (a web page can show these files without converting them).
BROWSER_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")
# Every image format read from a folder: the browser formats plus those PIL reads that browsers do not show.
IMAGE_SUFFIXES = (*BROWSER_IMAGE_SUFFIXES, ".tif", ".tiff", ".ppm", ".pgm", ".pnm")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp")


def is_image_path(path: str | os.PathLike[str]) -> bool:
    """True when the file name has one of :data:`IMAGE_SUFFIXES` (any case)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def is_video_path(path: str | os.PathLike[str]) -> bool:
    """True when the file name has one of :data:`VIDEO_SUFFIXES` (any case)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def natural_key(text: str) -> tuple:
    """Sort key that orders digit runs by value: ``frame2`` < ``frame10``; case-insensitive."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text))
