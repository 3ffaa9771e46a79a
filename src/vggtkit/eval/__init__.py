"""Evaluation of cameras, depth and point maps against ground truth (``vggtkit evaluate``)."""

from __future__ import annotations

from vggtkit.eval.report import format_markdown, format_table
from vggtkit.eval.runner import (
    evaluate_methods,
    identity_constant_baseline,
    model_method,
    normalized_ground_truth,
    score_scene,
)

__all__ = [
    "evaluate_methods",
    "format_markdown",
    "format_table",
    "identity_constant_baseline",
    "model_method",
    "normalized_ground_truth",
    "score_scene",
]
