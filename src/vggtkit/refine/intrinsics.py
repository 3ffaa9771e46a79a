"""Known intrinsics: calibration the user already has, used as it is and held fixed during refinement.

Accepted sources:

* a JSON file, OpenCV convention (the centre of the top-left pixel at (0, 0)), ``K`` in pixels:

  - one camera for every image: ``{"K": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], "width": W, "height": H}``;
  - one per image (vggtkit's own ``cameras.json`` works as is):
    ``{"frames": [{"name": "img1.jpg", "K": [[...]], "width": W, "height": H}, ...]}`` (``image`` may stand
    for ``name``; images not listed are estimated as usual).

  ``width``/``height`` are optional; when given and different from an image's size, ``K`` is rescaled
  (same aspect ratio only).
* a COLMAP ``cameras.txt`` with one camera (shared by every image), or a COLMAP model folder (``cameras`` and
  ``images`` ``.txt``/``.bin``), whose images are matched by name; any COLMAP camera model.
* a focal length in pixels (square pixels, principal point at the image centre), shared by every image.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vggtkit.refine.cameras import Camera

__all__ = ["KnownIntrinsics"]

_ASPECT_TOLERANCE = 0.01


@dataclass(frozen=True)
class _Entry:
    """One given calibration: a camera, or a pinhole K with an optional size."""

    camera: Camera | None = None
    K: tuple[tuple[float, ...], ...] | None = None
    size: tuple[int, int] | None = None  # (width, height) the calibration is for

    def for_image(self, width: int, height: int, where: str) -> Camera:
        if self.camera is not None:
            given = (self.camera.width, self.camera.height)
            camera = self.camera
        else:
            K = np.array(self.K, dtype=np.float64)
            given = self.size or (width, height)
            camera = Camera.from_K(K, given[0], given[1], "PINHOLE")
        if given == (width, height):
            return camera
        if abs(given[0] / given[1] - width / height) > _ASPECT_TOLERANCE * width / height:
            raise ValueError(
                f"the intrinsics for {where} are for {given[0]}x{given[1]} pixels but the image is "
                f"{width}x{height}, of another aspect ratio; give intrinsics for the image as it is"
            )
        return camera.scaled(width, height)


def _matrix(value: Any, where: str) -> tuple[tuple[float, ...], ...]:
    try:
        K = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        K = np.zeros(0)
    if K.shape != (3, 3) or not np.isfinite(K).all():
        raise ValueError(f"{where}: K must be a 3x3 matrix of numbers [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]")
    if not (K[0, 0] > 0 and K[1, 1] > 0):
        raise ValueError(f"{where}: the focal lengths K[0][0] and K[1][1] must be positive")
    return tuple(tuple(row) for row in K.tolist())


def _size(entry: dict, where: str) -> tuple[int, int] | None:
    if "width" not in entry and "height" not in entry:
        return None
    try:
        width, height = int(entry["width"]), int(entry["height"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: give both width and height as integers, or neither") from exc
    if width < 1 or height < 1:
        raise ValueError(f"{where}: width and height must be positive")
    return width, height


@dataclass(frozen=True)
class KnownIntrinsics:
    """Given intrinsics: one calibration for every image (``shared``) and/or calibrations by image name.

    Build with :meth:`from_file` or :meth:`from_focal`; :meth:`resolve` gives each frame its camera.
    """

    shared: _Entry | None = None
    by_name: dict[str, _Entry] = field(default_factory=dict)
    focal: float | None = None
    source: str = ""

    @classmethod
    def from_focal(cls, focal: float) -> KnownIntrinsics:
        """A focal length in pixels for every image (principal point at the centre)."""
        if not (isinstance(focal, (int, float)) and np.isfinite(focal) and focal > 0):
            raise ValueError(f"the focal length must be a positive number of pixels, got {focal!r}")
        return cls(focal=float(focal), source=f"focal {focal:g} px")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> KnownIntrinsics:
        """Read a JSON file, a COLMAP ``cameras.txt`` or a COLMAP model folder (see the module docstring).

        Raises:
            ValueError: the file is missing or malformed (the message says how).
        """
        path = Path(path)
        if path.is_dir():
            return cls._from_colmap_model(path)
        if not path.is_file():
            raise ValueError(f"intrinsics file not found: '{path}'")
        if path.suffix.lower() == ".json":
            return cls._from_json(path)
        if path.suffix.lower() == ".txt":
            return cls._from_cameras_txt(path)
        raise ValueError(
            f"'{path}': intrinsics must be a .json file, a COLMAP cameras.txt or a COLMAP model folder"
        )

    @classmethod
    def _from_json(cls, path: Path) -> KnownIntrinsics:
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read '{path}' as JSON: {exc}") from exc
        if isinstance(data, dict) and "K" in data:
            entry = _Entry(K=_matrix(data["K"], str(path)), size=_size(data, str(path)))
            return cls(shared=entry, source=str(path))
        frames = data.get("frames") if isinstance(data, dict) else None
        if not isinstance(frames, list) or not frames:
            raise ValueError(
                f"'{path}' must hold {{'K': [[...]]}} for all images or {{'frames': [{{'name', 'K'}}, ...]}}"
            )
        by_name: dict[str, _Entry] = {}
        for i, item in enumerate(frames):
            where = f"{path} frames[{i}]"
            name = item.get("name", item.get("image")) if isinstance(item, dict) else None
            if not isinstance(name, str) or "K" not in item:
                raise ValueError(f"{where} needs 'name' (or 'image') and 'K'")
            by_name[Path(name).name] = _Entry(K=_matrix(item["K"], where), size=_size(item, where))
        return cls(by_name=by_name, source=str(path))

    @classmethod
    def _from_cameras_txt(cls, path: Path) -> KnownIntrinsics:
        if any((path.parent / f"images{ext}").is_file() for ext in (".txt", ".bin")):
            return cls._from_colmap_model(path.parent)
        cameras = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            try:
                params = tuple(float(v) for v in fields[4:])
                cameras.append(Camera(fields[1], int(fields[2]), int(fields[3]), params))
            except (IndexError, ValueError) as exc:
                raise ValueError(
                    f"{path} line {number}: expected 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...' ({exc})"
                ) from exc
        if len(cameras) != 1:
            raise ValueError(
                f"{path} holds {len(cameras)} cameras; give a file with one camera, or the COLMAP model folder "
                "(with images.txt) so that images can be matched to their cameras"
            )
        return cls(shared=_Entry(camera=cameras[0]), source=str(path))

    @classmethod
    def _from_colmap_model(cls, folder: Path) -> KnownIntrinsics:
        import pycolmap

        try:
            model = pycolmap.Reconstruction(str(folder))
        except Exception as exc:  # pycolmap raises plain RuntimeError / ValueError subclasses
            raise ValueError(f"cannot read a COLMAP model from '{folder}': {exc}") from exc
        by_name = {
            Path(image.name).name: _Entry(camera=Camera.from_pycolmap(model.camera(image.camera_id)))
            for image in model.images.values()
        }
        if not by_name:
            raise ValueError(f"the COLMAP model in '{folder}' has no images")
        return cls(by_name=by_name, source=str(folder))

    def resolve(self, names: Sequence[str], original_hw: np.ndarray) -> list[Camera | None]:
        """Each frame's known camera at its original size, or None where nothing is known.

        Raises:
            ValueError: a calibration for another aspect ratio, or names of which none matches.
        """
        out: list[Camera | None] = []
        for name, (height, width) in zip(names, np.asarray(original_hw).tolist(), strict=True):
            entry = self.by_name.get(Path(name).name, self.shared)
            if self.focal is not None:
                f = self.focal
                out.append(Camera("SIMPLE_PINHOLE", width, height, (f, width / 2, height / 2)))
            elif entry is not None:
                out.append(entry.for_image(int(width), int(height), name))
            else:
                out.append(None)
        if self.by_name and all(c is None for c in out):
            raise ValueError(
                f"none of the images is named in {self.source} (it names e.g. "
                f"{', '.join(sorted(self.by_name)[:3])}); check the file"
            )
        return out
