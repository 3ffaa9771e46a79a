"""Atomic JSON writing shared by the camera exports."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from vggtkit.utils.atomic import atomic_path

__all__ = ["write_json"]


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON (temporary name, then rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    return path
