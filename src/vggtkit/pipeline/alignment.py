"""The similarity transform between two chunks, from the frames both predicted.

Each chunk is reconstructed in its own frame and scale. For the frames two chunks share, the same pixel of the
same image is one 3-D point seen by both: depth unprojected with each chunk's cameras gives pairs of points
``x_target = s R x_source + t``. The estimate:

1. starts from the cameras alone: the relative rotation and translation of the shared cameras (averaged over the
   frames) and the median ratio of the two chunks' depths (robust to a minority of bad pixels);
2. refines it on the point pairs by iteratively reweighted least squares: each pair is weighted by both chunks'
   confidences (each divided by its median, capped) and by a Cauchy weight of its residual relative to its depth,
   whose width follows the median residual, so outliers fade out; each step is a weighted Umeyama solve.

Noise-free predictions give the exact transform; a minority of wrong pixels, even confident ones, does not move it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from vggtkit.geometry import unproject_depth_map_to_point_map
from vggtkit.metrics.points import umeyama
from vggtkit.pipeline.prediction import ChunkPrediction
from vggtkit.pipeline.sim3 import Sim3

__all__ = ["Alignment", "estimate_sim3", "weighted_umeyama"]

logger = logging.getLogger(__name__)

MAX_POINTS = 20_000  # point pairs sampled (on a regular pixel grid) over the shared frames
MAX_CONF_WEIGHT = 10.0  # a pixel counts at most this many times a median-confidence one
IRLS_ITERATIONS = 20
CAUCHY_WIDTH = 2.0  # Cauchy scale in median residuals
MIN_RESIDUAL = 1e-9  # floor of the Cauchy scale (relative to depth): noise-free pairs fit to rounding
INLIER_RESIDUAL = (
    0.05  # a pair within 5 % of its depth is an inlier (reported, and used to accept loop edges)
)
CONVERGED = 1e-8  # stop when the transform moves less than this (scale ratio, radians, translation / depth)


@dataclass(frozen=True)
class Alignment:
    """An estimated ``target_from_source`` similarity and how well the shared frames agree under it.

    Attributes:
        target_from_source: maps the source chunk's frame to the target chunk's.
        num_points: point pairs used (0: the estimate rests on the cameras only).
        inlier_fraction: share of the confidence weight whose residual is within 5 % of its depth.
        median_residual: median distance between paired points, relative to their depth.
    """

    target_from_source: Sim3
    num_points: int
    inlier_fraction: float
    median_residual: float


def weighted_umeyama(src: np.ndarray, dst: np.ndarray, weights: np.ndarray) -> Sim3:
    """The similarity minimising ``sum_i w_i |dst_i - (s R src_i + t)|^2``.

    Solved with :func:`vggtkit.metrics.points.umeyama`: with weighted centroids, the weighted problem's scale and
    rotation are those of the unweighted one on the centred points scaled by ``sqrt(w_i)`` together with their
    negatives (a set with zero mean and the weighted covariances), and ``t`` follows from the centroids.

    Args:
        src, dst: (N, 3) corresponding points, N >= 3; weights: (N,) non-negative, not all zero.
    """
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    mu_src, mu_dst = w @ src, w @ dst
    root = np.sqrt(w)[:, None]
    a, b = root * (src - mu_src), root * (dst - mu_dst)
    scale, rotation, _ = umeyama(np.concatenate([a, -a]), np.concatenate([b, -b]))
    return Sim3(scale, rotation, mu_dst - scale * rotation @ mu_src)


def _mean_rotation(rotations: np.ndarray) -> np.ndarray:
    """The rotation closest (chordal distance) to a set of (n, 3, 3) rotations."""
    u, _, vt = np.linalg.svd(rotations.sum(axis=0))
    sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    return u @ sign @ vt


def _camera_estimate(target: ChunkPrediction, source: ChunkPrediction, depth_ratio: float) -> Sim3:
    """``target_from_source`` from the shared cameras and a depth ratio.

    A point's camera coordinates are ``c = R_s x_s + t_s`` in the source and ``s c = R_t x_t + t_t`` in the
    target, so ``x_t = s R_t^T R_s x_s + R_t^T (s t_s - t_t)`` for each shared camera.
    """
    rot_t, trans_t = target.extrinsic[:, :3, :3], target.extrinsic[:, :3, 3]
    rot_s, trans_s = source.extrinsic[:, :3, :3], source.extrinsic[:, :3, 3]
    rot_t_inv = np.swapaxes(rot_t, -1, -2)
    rotation = _mean_rotation(rot_t_inv @ rot_s)
    translation = np.einsum("nij,nj->ni", rot_t_inv, depth_ratio * trans_s - trans_t).mean(axis=0)
    return Sim3(depth_ratio, rotation, translation)


def _grid_points(pred: ChunkPrediction, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World points, depths and confidences of every ``stride``-th pixel: (n, h, w, 3), (n, h, w), (n, h, w).

    Sampling pixel ``u = stride * u'`` is unprojecting the subsampled map with ``f / stride`` and ``c / stride``.
    """
    depth = pred.depth[:, ::stride, ::stride, 0]
    to_grid = np.diag([1.0 / stride, 1.0 / stride, 1.0])
    points = unproject_depth_map_to_point_map(depth, pred.extrinsic, to_grid @ pred.intrinsic)
    return points, depth.astype(np.float64), pred.depth_conf[:, ::stride, ::stride].astype(np.float64)


def _relative_confidence(conf: np.ndarray, valid: np.ndarray) -> np.ndarray:
    conf = np.where(valid, np.clip(conf, 0.0, None), 0.0)
    median = float(np.median(conf[valid])) if valid.any() else 0.0
    if not median > 0:
        return valid.astype(np.float64)
    return np.minimum(conf / median, MAX_CONF_WEIGHT)


def _correspondences(
    target: ChunkPrediction, source: ChunkPrediction
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Point pairs of the shared frames: target points, source points (N, 3), weights, target and source depths."""
    n, h, w = target.depth_conf.shape
    stride = max(1, math.ceil(math.sqrt(n * h * w / MAX_POINTS)))
    pts_t, depth_t, conf_t = _grid_points(target, stride)
    pts_s, depth_s, conf_s = _grid_points(source, stride)
    valid = (depth_t > 0) & (depth_s > 0) & np.isfinite(pts_t).all(-1) & np.isfinite(pts_s).all(-1)
    valid &= np.isfinite(conf_t) & np.isfinite(conf_s)
    weights = np.sqrt(_relative_confidence(conf_t, valid) * _relative_confidence(conf_s, valid))
    keep = valid & (weights > 0)
    return pts_t[keep], pts_s[keep], weights[keep], depth_t[keep], depth_s[keep]


def _relative_residuals(sim: Sim3, pts_t: np.ndarray, pts_s: np.ndarray, depth_t: np.ndarray) -> np.ndarray:
    return np.linalg.norm(pts_t - sim.apply(pts_s), axis=-1) / depth_t


def _changed(old: Sim3, new: Sim3, unit: float) -> float:
    """How far apart two transforms are: scale ratio, rotation angle and translation (in ``unit``)."""
    return max(
        abs(math.log(new.scale / old.scale)),
        (new @ old.inverse()).rotation_angle(),
        float(np.linalg.norm(new.translation - old.translation)) / unit,
    )


def _irls(
    pts_t: np.ndarray, pts_s: np.ndarray, conf_weights: np.ndarray, depth_t: np.ndarray, start: Sim3
) -> tuple[Sim3, np.ndarray]:
    """Cauchy-weighted least squares from ``start``; returns the transform and the final relative residuals."""
    sim = start
    unit = float(np.median(depth_t))
    residuals = _relative_residuals(sim, pts_t, pts_s, depth_t)
    for _ in range(IRLS_ITERATIONS):
        width = max(CAUCHY_WIDTH * float(np.median(residuals)), MIN_RESIDUAL)
        # Residuals are relative to depth, so the squared distances are divided by depth^2.
        weights = conf_weights / (1.0 + (residuals / width) ** 2) / depth_t**2
        new = weighted_umeyama(pts_s, pts_t, weights)
        residuals = _relative_residuals(new, pts_t, pts_s, depth_t)
        converged = _changed(sim, new, unit) < CONVERGED
        sim = new
        if converged:
            break
    return sim, residuals


def estimate_sim3(target: ChunkPrediction, source: ChunkPrediction) -> Alignment:
    """Estimate ``target_from_source`` from the frames two chunks share.

    Args:
        target, source: the two chunks' predictions of the same frames, in the same order (see
            :meth:`ChunkPrediction.subset`).

    Returns:
        The transform and how well the shared frames agree under it.

    Raises:
        ValueError: the predictions are not of the same frames, or of no frame.
    """
    if target.num_frames == 0 or not np.array_equal(target.frames, source.frames):
        raise ValueError(
            f"the two chunks must predict the same frames, got {target.frames.tolist()} and "
            f"{source.frames.tolist()}"
        )
    pts_t, pts_s, conf_weights, depth_t, depth_s = _correspondences(target, source)
    if len(pts_t) < 3:
        logger.warning(
            "frames %s: fewer than 3 pixels with a valid depth in both chunks; aligning them by their cameras "
            "alone (scale 1)",
            target.frames.tolist(),
        )
        return Alignment(_camera_estimate(target, source, 1.0), 0, 0.0, float("nan"))
    start = _camera_estimate(target, source, float(np.median(depth_t / depth_s)))
    sim, residuals = _irls(pts_t, pts_s, conf_weights, depth_t, start)
    inliers = float(conf_weights[residuals < INLIER_RESIDUAL].sum() / conf_weights.sum())
    return Alignment(sim, len(pts_t), inliers, float(np.median(residuals)))
