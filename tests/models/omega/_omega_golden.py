"""Access to the VGGT-Omega golden fixture produced by the official code (see fixtures/golden/README.md)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

OMEGA_DIR = Path(__file__).parents[2] / "fixtures" / "golden" / "omega-tiny"
SHAPES = Path(__file__).parents[2] / "fixtures" / "vggt_omega_1b_state_dict_shapes.json"


@functools.cache
def load_omega_golden() -> dict[str, np.ndarray]:
    """All arrays of ``io.npz``, loaded once."""
    with np.load(OMEGA_DIR / "io.npz") as npz:
        return {key: npz[key] for key in npz.files}


@functools.cache
def omega_config_json() -> dict[str, Any]:
    return json.loads((OMEGA_DIR / "config.json").read_text())


def omega_model_fields() -> dict[str, Any]:
    """The fixture's ``model`` section without ``fixed``: keyword arguments of VGGTOmegaConfig."""
    return {k: v for k, v in omega_config_json()["model"].items() if k != "fixed"}


def omega_golden_model():
    """A fresh VGGTOmega of the fixture's configuration with its weights, strictly loaded, eval mode."""
    from safetensors.torch import load_file

    from vggtkit import VGGTOmega, VGGTOmegaConfig

    model = VGGTOmega(VGGTOmegaConfig(**omega_model_fields()))
    model.load_state_dict(load_file(OMEGA_DIR / "weights.safetensors"), strict=True)
    return model.eval()


def golden_tensor(key: str) -> torch.Tensor:
    return torch.from_numpy(load_omega_golden()[key])
