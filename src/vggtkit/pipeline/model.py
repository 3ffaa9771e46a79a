"""The model a reconstruction runs: any family's instance or checkpoint, checked to have what it needs."""

from __future__ import annotations

import os
from typing import Any

import torch

from vggtkit.models.common import FamilyModel
from vggtkit.models.registry import from_pretrained

__all__ = ["load_model"]


def load_model(model: Any, device: torch.device) -> FamilyModel:
    """The model on ``device`` in eval mode.

    Args:
        model: a model instance of any family (``vggtkit.VGGT``, ``vggtkit.VGGTOmega``), or anything
            :func:`vggtkit.from_pretrained` takes (bundled name, folder, weights file, hub id); the family is
            recognised from the checkpoint.

    Raises:
        ValueError: something that is neither, or a model without a camera or a depth head;
            ``CheckpointError`` (a ValueError) for a checkpoint that cannot be found or read.
    """
    if isinstance(model, FamilyModel):
        net = model.to(device).eval()
    elif isinstance(model, (str, os.PathLike)):
        net = from_pretrained(model, map_location=device).eval()
    else:
        raise ValueError(
            "model must be a vggtkit model (VGGT, VGGTOmega) or a checkpoint source (bundled name, folder, "
            f"weights file or hub id), got {type(model).__name__}"
        )
    if not (net.config.enable_camera and net.config.enable_depth):
        raise ValueError("the model has no camera or no depth head; reconstruction needs both")
    return net
