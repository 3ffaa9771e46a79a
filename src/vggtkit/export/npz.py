"""``predictions.npz``: every prediction, reloadable with :meth:`Reconstruction.load_npz` for later re-exports."""

from __future__ import annotations

import os

import numpy as np

from vggtkit.export.options import DEFAULT_OPTIONS, ExportOptions, ExportResult
from vggtkit.reconstruction import Reconstruction

__all__ = ["export_npz"]


def export_npz(
    rec: Reconstruction,
    path: str | os.PathLike[str],
    options: ExportOptions = DEFAULT_OPTIONS,
    keep: np.ndarray | None = None,
) -> ExportResult:
    """Write :meth:`Reconstruction.save_npz` to ``path``; ``options`` and ``keep`` do not apply (every pixel
    is saved, so any threshold can be chosen later)."""
    return ExportResult((rec.save_npz(path),))
