"""Point-track accuracy: pixel error of visible points and visibility classification accuracy."""

from __future__ import annotations

import numpy as np


def track_errors(
    pred_tracks: np.ndarray,
    pred_vis: np.ndarray,
    gt_tracks: np.ndarray,
    gt_vis: np.ndarray,
    vis_threshold: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-point errors of tracks of frame-0 query points in the other frames.

    Frame 0 holds the queries themselves, so it is left out; only queries visible in frame 0 count.

    Args:
        pred_tracks: (S, N, 2) predicted pixel (x, y); pred_vis: (S, N) visibility probabilities.
        gt_tracks: (S, N, 2) ground-truth pixel (x, y); gt_vis: (S, N) bool ground-truth visibility.
        vis_threshold: probability above which a point is predicted visible.

    Returns:
        ``(pixel_errors, vis_correct)``: (P,) pixel distances of the P points visible in the ground truth, and
        (Q,) bool, whether the predicted visibility of each (frame, query) pair matches the ground truth.

    Raises:
        ValueError: mismatched shapes or fewer than 2 frames.
    """
    pred_tracks, gt_tracks = np.asarray(pred_tracks, np.float64), np.asarray(gt_tracks, np.float64)
    pred_vis, gt_vis = np.asarray(pred_vis, np.float64), np.asarray(gt_vis, bool)
    if pred_tracks.shape != gt_tracks.shape or pred_tracks.ndim != 3 or pred_tracks.shape[-1] != 2:
        raise ValueError(f"tracks must both be (S, N, 2), got {pred_tracks.shape} and {gt_tracks.shape}")
    if pred_vis.shape != gt_vis.shape or pred_vis.shape != pred_tracks.shape[:2]:
        raise ValueError(f"visibilities must be (S, N) = {pred_tracks.shape[:2]}, got {pred_vis.shape}")
    if pred_tracks.shape[0] < 2:
        raise ValueError("track errors need at least 2 frames")
    queries = gt_vis[0]
    visible = gt_vis[1:, queries]
    errors = np.linalg.norm(pred_tracks[1:, queries] - gt_tracks[1:, queries], axis=-1)[visible]
    vis_correct = ((pred_vis[1:, queries] > vis_threshold) == visible).reshape(-1)
    return errors, vis_correct


def track_metrics(errors: np.ndarray, vis_correct: np.ndarray) -> dict[str, float]:
    """Summaries of pooled :func:`track_errors` outputs.

    Returns:
        ``track_err_median`` and ``track_err_mean`` (pixels), ``track_within_2px`` (fraction of visible points
        closer than 2 pixels) and ``track_vis_accuracy`` (fraction of correct visibility predictions); the
        error keys are absent when no point is visible.
    """
    errors, vis_correct = np.asarray(errors, np.float64), np.asarray(vis_correct, bool)
    out: dict[str, float] = {}
    if vis_correct.size:
        out["track_vis_accuracy"] = float(vis_correct.mean())
    if errors.size:
        out.update(
            track_err_median=float(np.median(errors)),
            track_err_mean=float(errors.mean()),
            track_within_2px=float((errors < 2).mean()),
        )
    return out
