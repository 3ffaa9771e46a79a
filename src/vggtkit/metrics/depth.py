"""Depth errors after per-frame median scaling: AbsRel and delta < 1.25."""

from __future__ import annotations

import numpy as np


def median_scale(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    """Scale s with median(s * pred[mask]) = median(gt[mask]); 1.0 when nothing valid or pred median is 0."""
    if not mask.any():
        return 1.0
    denominator = float(np.median(pred[mask]))
    if not np.isfinite(denominator) or abs(denominator) < 1e-12:
        return 1.0
    return float(np.median(gt[mask])) / denominator


def depth_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """AbsRel and delta < 1.25 of each frame after median scaling, averaged over frames.

    Args:
        pred: (S, H, W) predicted depth (any scale); gt: (S, H, W) ground truth; mask: (S, H, W) bool valid
            pixels (default: gt > 0 and finite). Frames without valid pixels are skipped.

    Returns:
        ``abs_rel`` = mean |s pred - gt| / gt and ``delta_1.25`` = fraction of max(s pred / gt, gt / (s pred))
        < 1.25, averaged over frames; ``frames`` = number of frames scored.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(f"pred and gt must both be (S, H, W), got {pred.shape} and {gt.shape}")
    if mask is None:
        mask = np.isfinite(gt) & (gt > 0)
    mask = np.asarray(mask, dtype=bool) & np.isfinite(pred) & (gt > 0)
    abs_rel, delta = [], []
    for p, g, m in zip(pred, gt, mask, strict=True):
        if not m.any():
            continue
        scaled = median_scale(p, g, m) * p[m]
        truth = g[m]
        abs_rel.append(float(np.mean(np.abs(scaled - truth) / truth)))
        ratio = np.maximum(scaled / truth, truth / np.maximum(scaled, 1e-12))
        delta.append(float(np.mean(ratio < 1.25)))
    if not abs_rel:
        raise ValueError("no frame has valid ground-truth depth")
    return {"abs_rel": float(np.mean(abs_rel)), "delta_1.25": float(np.mean(delta)), "frames": len(abs_rel)}
