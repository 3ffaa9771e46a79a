"""Read cameras and poses from a COLMAP sparse model (text or binary) through pycolmap.

COLMAP puts the centre of the top-left pixel at (0.5, 0.5); vggtkit (OpenCV) at (0, 0). The reader converts
principal points accordingly. Distortion parameters are ignored (with a warning): undistort images first
(``colmap image_undistorter``) for exact geometry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

_PINHOLE_MODELS = ("SIMPLE_PINHOLE", "PINHOLE")


@dataclass(frozen=True)
class ColmapView:
    """One registered image: ``name`` (path relative to the image folder), ``cam_from_world`` (3, 4),
    ``K`` (3, 3) in pixels (OpenCV pixel-centre convention) and the camera's ``width`` x ``height``."""

    name: str
    cam_from_world: np.ndarray
    K: np.ndarray
    width: int
    height: int


def _model_name(camera) -> str:
    model = camera.model
    return getattr(model, "name", str(model)).split(".")[-1]


def _cam_from_world(image) -> np.ndarray:
    pose = image.cam_from_world
    pose = pose() if callable(pose) else pose  # a method in pycolmap >= 3.12, an attribute before
    return np.asarray(pose.matrix(), dtype=np.float64)


def read_colmap_model(path: str | Path) -> list[ColmapView]:
    """Registered images of a COLMAP sparse model folder (``cameras``/``images`` .txt or .bin), sorted by name.

    Raises:
        FileNotFoundError: when ``path`` holds no COLMAP model.
        ValueError: when pycolmap cannot read it or no image is registered.
    """
    path = Path(path)
    if not any((path / f"cameras{ext}").is_file() for ext in (".txt", ".bin")):
        raise FileNotFoundError(
            f"{path} holds no COLMAP model (expected cameras.txt/.bin and images.txt/.bin)"
        )
    try:
        import pycolmap
    except ImportError as exc:
        raise ValueError("reading COLMAP models needs pycolmap (pip install pycolmap)") from exc
    try:
        reconstruction = pycolmap.Reconstruction(str(path))
    except Exception as exc:  # pycolmap raises plain RuntimeError/ValueError on corrupt files
        raise ValueError(f"cannot read the COLMAP model in {path}: {exc}") from exc
    views = []
    warned: set[str] = set()
    for image in reconstruction.images.values():
        has_pose = getattr(image, "has_pose", None)
        if has_pose is not None and not (has_pose() if callable(has_pose) else has_pose):
            continue
        camera = reconstruction.cameras[image.camera_id]
        model = _model_name(camera)
        if model not in _PINHOLE_MODELS and model not in warned:
            logger.warning("COLMAP camera model %s: distortion is ignored; undistort the images first", model)
            warned.add(model)
        K = np.asarray(camera.calibration_matrix(), dtype=np.float64).copy()
        K[0, 2] -= 0.5
        K[1, 2] -= 0.5
        views.append(ColmapView(image.name, _cam_from_world(image), K, int(camera.width), int(camera.height)))
    if not views:
        raise ValueError(f"the COLMAP model in {path} has no registered images")
    return sorted(views, key=lambda v: v.name)
