"""The model a reconstruction runs: any family's instance or checkpoint, checked to have what it needs."""

from __future__ import annotations

import os
from typing import Any

import torch

from vggtkit.models.common import FamilyModel
from vggtkit.models.registry import from_pretrained
from vggtkit.onnx.runtime import OnnxVGGT

__all__ = ["load_model"]


def load_model(model: Any, device: torch.device, runtime: str = "torch") -> FamilyModel | OnnxVGGT:
    """The model on ``device`` in eval mode, or an exported VGGT in an onnxruntime session.

    Args:
        model: a model instance of any family (``vggtkit.VGGT``, ``vggtkit.VGGTOmega``), or anything
            :func:`vggtkit.from_pretrained` takes (bundled name, folder, weights file, hub id); the family is
            recognised from the checkpoint. With ``runtime='onnx'``: an ``.onnx`` file written by
            ``vggtkit.onnx.export_onnx``, or a ``vggtkit.onnx.OnnxVGGT``.
        runtime: 'torch' or 'onnx' (an ``OnnxVGGT`` runs in onnxruntime whatever the runtime).

    Raises:
        ValueError: something that is neither, an ``.onnx`` file for the torch runtime, or a model without a
            camera or a depth head; ``CheckpointError`` (a ValueError) for a checkpoint that cannot be found or
            read; the errors of :class:`~vggtkit.onnx.OnnxVGGT` for an ONNX file.
    """
    if runtime == "onnx" or isinstance(model, OnnxVGGT):
        net = _load_onnx_model(model, device)
    else:
        net = _load_torch_model(model, device)
    if not (net.config.enable_camera and net.config.enable_depth):
        raise ValueError("the model has no camera or no depth head; reconstruction needs both")
    return net


def _load_torch_model(model: Any, device: torch.device) -> FamilyModel:
    if isinstance(model, FamilyModel):
        return model.to(device).eval()
    if not isinstance(model, (str, os.PathLike)):
        raise ValueError(
            "model must be a vggtkit model (VGGT, VGGTOmega) or a checkpoint source (bundled name, folder, "
            f"weights file or hub id), got {type(model).__name__}"
        )
    if str(model).lower().endswith(".onnx"):
        raise ValueError(f"{model} is an ONNX model; run it with runtime='onnx'")
    return from_pretrained(model, map_location=device).eval()


def _load_onnx_model(model: Any, device: torch.device) -> OnnxVGGT:
    if isinstance(model, OnnxVGGT):
        return model
    if not isinstance(model, (str, os.PathLike)):
        raise ValueError(
            f"runtime='onnx' runs an .onnx file written by vggtkit.onnx.export_onnx, got {type(model).__name__}"
        )
    return OnnxVGGT(model, device)
