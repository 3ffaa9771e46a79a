"""Running a model for inference: inputs on the model's device, weights in the asked precision, no autograd."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from vggtkit.inference.options import InferenceOptions
from vggtkit.inference.plan import ExecutionPlan


def as_options(
    value: InferenceOptions | ExecutionPlan | str | torch.dtype | None,
) -> InferenceOptions | ExecutionPlan | None:
    """Normalise the ``options`` argument of a model's forward: a dtype name or torch.dtype is a shorthand."""
    if value is None or isinstance(value, InferenceOptions | ExecutionPlan):
        return value
    if isinstance(value, str | torch.dtype):
        return InferenceOptions(dtype=value)
    raise ValueError(
        "options must be an InferenceOptions, an ExecutionPlan, a dtype name ('float32', 'bfloat16', "
        f"'float16') or None, got {type(value).__name__}"
    )


def weights_nbytes(model: torch.nn.Module) -> int:
    """Bytes held by the model's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


def infer(
    model: torch.nn.Module,
    images: torch.Tensor,
    query_points: torch.Tensor | None = None,
    options: InferenceOptions | ExecutionPlan | str | torch.dtype | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run ``model`` (a model of either family: it has ``convert_weights``) for inference: inputs moved to the model's device, ``weights_dtype`` applied, eval mode,
    ``torch.inference_mode``; returns the model's prediction dict (the training mode is restored after).

    Args:
        images: (S, 3, H, W) or (B, S, 3, H, W) RGB in [0, 1].
        query_points: optional (N, 2) or (B, N, 2) pixels in frame 0 for a track head.
        options: :class:`InferenceOptions`, an :class:`ExecutionPlan`, a dtype name or None (lean float32).
        progress: called with (done, total) steps as the aggregator blocks and heads finish.
    """
    opts = as_options(options) or InferenceOptions()
    device = next(model.parameters()).device
    if isinstance(opts, InferenceOptions):
        model.convert_weights(opts)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            kwargs: dict[str, Any] = {"options": opts, "progress": progress}
            if query_points is not None:
                kwargs["query_points"] = query_points.to(device)
            return model(images.to(device), **kwargs)
    finally:
        model.train(was_training)
