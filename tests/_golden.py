"""Access to the golden fixture produced by upstream VGGT (see fixtures/golden/README.md)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

GOLDEN_DIR = Path(__file__).parent / "fixtures" / "golden" / "tiny"
GOLDEN_TOL = 1e-4


@functools.cache
def load_golden() -> dict[str, np.ndarray]:
    """All arrays of ``io.npz``, loaded once."""
    with np.load(GOLDEN_DIR / "io.npz") as npz:
        return {key: npz[key] for key in npz.files}


def golden_error(ours: np.ndarray | torch.Tensor, ref: np.ndarray) -> float:
    """Worst elementwise ``|ours - ref| / (1 + |ref|)``; the golden criterion is this <= 1e-4."""
    if isinstance(ours, torch.Tensor):
        ours = ours.detach().cpu().numpy()
    diff = np.abs(np.asarray(ours, dtype=np.float64) - ref.astype(np.float64))
    return float(np.max(diff / (1.0 + np.abs(ref.astype(np.float64))), initial=0.0))


def assert_golden(
    name: str, ours: np.ndarray | torch.Tensor, ref: np.ndarray, tol: float = GOLDEN_TOL
) -> None:
    """Assert ``|ours - ref| <= tol * (1 + |ref|)`` elementwise, reporting the worst element on failure."""
    if isinstance(ours, torch.Tensor):
        ours = ours.detach().cpu().numpy()
    ours = np.asarray(ours)
    assert ours.shape == ref.shape, f"{name}: shape {ours.shape} != golden {ref.shape}"
    assert (np.isfinite(ours) == np.isfinite(ref)).all(), f"{name}: non-finite entries differ from golden"
    ours64 = ours.astype(np.float64)
    ref64 = ref.astype(np.float64)
    ratio = np.abs(ours64 - ref64) / (1.0 + np.abs(ref64))
    worst = np.unravel_index(np.argmax(ratio), ratio.shape) if ratio.size else ()
    if ratio.size and not ratio[worst] <= tol:
        n_bad = int((ratio > tol).sum()) + int(np.isnan(ratio).sum())
        raise AssertionError(
            f"{name}: worst |ours-ref|/(1+|ref|) = {ratio[worst]:.3e} > {tol:.0e} "
            f"at index {tuple(map(int, worst))} (ours {ours64[worst]!r}, ref {ref64[worst]!r}); "
            f"{n_bad}/{ratio.size} elements fail"
        )


@functools.cache
def golden_config_dict() -> dict:
    """The ``model`` section of config.json (VGGTConfig field names)."""
    import json

    return json.loads((GOLDEN_DIR / "config.json").read_text())["model"]


def golden_model():
    """A fresh VGGT built from the golden config with the golden weights, strictly loaded, eval mode."""
    from safetensors.torch import load_file

    from vggtkit import VGGT, VGGTConfig

    model = VGGT(VGGTConfig(**golden_config_dict()))
    model.load_state_dict(load_file(GOLDEN_DIR / "weights.safetensors"), strict=True)
    return model.eval()
