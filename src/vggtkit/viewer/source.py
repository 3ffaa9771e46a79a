"""What the viewer opens: a ``predictions.npz`` (or the folder holding it) and, when present, the refined cameras
written beside it.

Camera sets are files in the reconstruction's folder, each a full :class:`Reconstruction` npz (cameras and the
points computed with them). ``VARIANT_FILES`` names them; a refinement that writes its result under the
``refined`` name is shown by the viewer with no other change. A set is read from disk only when first shown.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from pathlib import Path

import numpy as np

from vggtkit.reconstruction import Reconstruction
from vggtkit.viewer.settings import PREDICTED, REFINED

__all__ = ["PREDICTIONS_NAME", "VARIANT_FILES", "SceneSource", "load_predictions"]

logger = logging.getLogger(__name__)

PREDICTIONS_NAME = "predictions.npz"
VARIANT_FILES: dict[str, str] = {PREDICTED: PREDICTIONS_NAME, REFINED: "predictions_refined.npz"}
"""Camera set name -> file name in the reconstruction's folder."""


class _ReadOnlyReconstruction(Reconstruction):
    """A reconstruction that is only read (its arrays are never changed): colours and the content mask, which
    every filter change needs, are computed once."""

    def colors(self) -> np.ndarray:
        if "_colors" not in self.__dict__:
            self.__dict__["_colors"] = super().colors()
        return self.__dict__["_colors"]

    def content_mask(self) -> np.ndarray:
        if "_content" not in self.__dict__:
            self.__dict__["_content"] = super().content_mask()
        return self.__dict__["_content"].copy()  # callers refine the mask in place


def _read_only(rec: Reconstruction) -> Reconstruction:
    """``rec`` sharing its arrays (no copy), with cached colours and content mask."""
    if isinstance(rec, _ReadOnlyReconstruction):
        return rec
    return _ReadOnlyReconstruction(**{f.name: getattr(rec, f.name) for f in dataclasses.fields(rec)})


def load_predictions(path: str | os.PathLike[str]) -> Reconstruction:
    """Read a predictions npz (see :meth:`Reconstruction.load_npz`).

    Raises:
        ValueError: missing file, not an npz (zip) archive, truncated or corrupt archive, missing arrays.
    """
    return Reconstruction.load_npz(Path(path))


def _resolve(path: str | os.PathLike[str]) -> Path:
    """The predictions file of ``path`` (a run's output folder or the npz itself)."""
    path = Path(path).expanduser()
    if path.is_dir():
        found = path / PREDICTIONS_NAME
        if not found.is_file():
            raise ValueError(
                f"no {PREDICTIONS_NAME} in '{path}'; pass the output folder of vggtkit reconstruct "
                "(written with the npz export) or the path of an npz file"
            )
        return found
    if not path.exists():
        raise ValueError(
            f"'{path}' does not exist; pass the output folder of vggtkit reconstruct or an npz file"
        )
    return path


class SceneSource:
    """The camera sets of one scene: "predicted" and, when a refinement wrote one, "refined".

    Sets are loaded once, on first use, and kept. All sets must have the same frames and resolution. The
    reconstructions given are shared, not copied, and must not be changed while they are shown.
    """

    def __init__(
        self,
        loaded: dict[str, Reconstruction],
        files: dict[str, Path] | None = None,
        folder: Path | None = None,
    ) -> None:
        if PREDICTED not in loaded:
            raise ValueError(f"a scene needs its '{PREDICTED}' reconstruction")
        self._loaded = {name: _read_only(rec) for name, rec in loaded.items()}
        self._files = dict(files or {})
        self._lock = threading.Lock()
        self.folder = folder

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> SceneSource:
        """Open a run's output folder or a predictions npz; a refined set beside ``predictions.npz`` is found
        by its name in ``VARIANT_FILES``.

        Raises:
            ValueError: the path does not exist, holds no predictions, or the file is not a readable npz.
        """
        main = _resolve(path)
        predicted = load_predictions(main)
        files = {PREDICTED: main}
        if main.name == PREDICTIONS_NAME:
            for name, file_name in VARIANT_FILES.items():
                candidate = main.parent / file_name
                if name != PREDICTED and candidate.is_file():
                    files[name] = candidate
        return cls({PREDICTED: predicted}, files, folder=main.parent)

    @classmethod
    def from_reconstruction(
        cls,
        rec: Reconstruction,
        folder: str | os.PathLike[str] | None = None,
        refined: Reconstruction | None = None,
    ) -> SceneSource:
        """A scene held in memory (e.g. just reconstructed); ``folder`` is where it was written, if anywhere,
        and where a refined set is looked for when ``refined`` is not given."""
        loaded = {PREDICTED: rec}
        files: dict[str, Path] = {}
        if refined is not None:
            loaded[REFINED] = refined
        elif folder is not None and (Path(folder) / VARIANT_FILES[REFINED]).is_file():
            files[REFINED] = Path(folder) / VARIANT_FILES[REFINED]
        return cls(loaded, files, folder=Path(folder) if folder is not None else None)

    @property
    def names(self) -> list[str]:
        """The camera sets available, "predicted" first."""
        return [n for n in VARIANT_FILES if n in self._loaded or n in self._files]

    @property
    def path(self) -> Path | None:
        """The predictions file, when the scene was read from disk."""
        return self._files.get(PREDICTED)

    def get(self, name: str = PREDICTED) -> Reconstruction:
        """The reconstruction of camera set ``name`` (read on first use).

        Raises:
            ValueError: unknown set, unreadable file, or frames that do not match the predicted set.
        """
        with self._lock:
            if name not in self._loaded:
                if name not in self._files:
                    raise ValueError(
                        f"no '{name}' cameras for this scene; available: {', '.join(self.names)}"
                    )
                rec = _read_only(load_predictions(self._files[name]))
                self._check_matches(name, rec)
                self._loaded[name] = rec
                logger.info("loaded the %s cameras from %s", name, self._files[name])
            return self._loaded[name]

    def _check_matches(self, name: str, rec: Reconstruction) -> None:
        base = self._loaded[PREDICTED]
        if (rec.num_frames, rec.model_hw) != (base.num_frames, base.model_hw):
            raise ValueError(
                f"the {name} reconstruction has {rec.num_frames} frames at {rec.model_hw}, the predicted one "
                f"{base.num_frames} at {base.model_hw}; they must describe the same frames"
            )
