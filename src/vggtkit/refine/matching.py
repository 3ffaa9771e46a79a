"""Matching two images' keypoints: mutual nearest neighbours with a ratio test, verified by a RANSAC
fundamental matrix; and guided matching along known epipolar lines within a depth range."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from vggtkit.refine.cameras import Camera, fundamental_from_poses, project, unproject
from vggtkit.refine.features import Features

__all__ = ["GuideView", "guided_matches", "mutual_ratio_matches", "verify_fundamental"]

_ROWS = 1024  # keypoints of the first image per block of similarities (bounds their memory)


def _mutual_matches(
    blocks: Iterable[tuple[slice, torch.Tensor]], na: int, nb: int, ratio: float
) -> np.ndarray:
    """Mutual nearest neighbours passing the ratio test, from blocks of descriptor similarities
    ``(rows of a, (n, nb) dot products of unit descriptors)`` covering all of a's rows (-inf where a pair is
    ruled out). Returns (K, 2) ``[index in a, index in b]``.

    For unit vectors the squared distance is ``2 - 2 dot``, so the ratio test ``d1 < ratio d2`` reads
    ``2 - 2 s1 < ratio^2 (2 - 2 s2)`` on the two best similarities.
    """
    forward = np.full(na, -1, np.int64)
    column_best = torch.full((nb,), -torch.inf)
    backward = torch.full((nb,), -1, dtype=torch.int64)
    for rows, score in blocks:
        if nb >= 2:
            best, index = torch.topk(score, 2, dim=1)
            second = best[:, 1]
        else:
            best, index, second = (
                score,
                torch.zeros_like(score, dtype=torch.int64),
                torch.full((len(score),), -torch.inf),
            )
        passes = torch.isfinite(best[:, 0]) & (2 - 2 * best[:, 0] < ratio**2 * (2 - 2 * second))
        forward[rows] = torch.where(passes, index[:, 0], -1).numpy()
        block_best, block_index = score.max(dim=0)
        better = block_best > column_best
        column_best[better] = block_best[better]
        backward[better] = block_index[better] + rows.start
    a_idx = np.nonzero(forward >= 0)[0]
    a_idx = a_idx[backward.numpy()[forward[a_idx]] == a_idx]
    return np.stack((a_idx, forward[a_idx]), axis=1).astype(np.int64)


def _row_blocks(count: int) -> Iterator[slice]:
    for start in range(0, count, _ROWS):
        yield slice(start, min(start + _ROWS, count))


def mutual_ratio_matches(a: np.ndarray, b: np.ndarray, ratio: float) -> np.ndarray:
    """Matches between descriptor sets that are mutual nearest neighbours and pass Lowe's ratio test.

    Args:
        a, b: (Na, D), (Nb, D) float32 unit-length descriptors (Euclidean distances).
        ratio: the nearest distance must be below ``ratio`` times the second nearest (from a to b).

    Returns:
        (K, 2) int64 indices ``[index in a, index in b]``.
    """
    if len(a) < 2 or len(b) < 2:
        return np.zeros((0, 2), np.int64)
    a_t, b_t = (
        torch.from_numpy(np.ascontiguousarray(a, np.float32)),
        torch.from_numpy(np.ascontiguousarray(b, np.float32)),
    )
    blocks = ((rows, a_t[rows] @ b_t.T) for rows in _row_blocks(len(a)))
    return _mutual_matches(blocks, len(a), len(b), ratio)


def verify_fundamental(xy_a: np.ndarray, xy_b: np.ndarray, threshold: float, seed: int) -> np.ndarray:
    """Inliers of a fundamental matrix fitted by RANSAC (OpenCV's MAGSAC++).

    Args:
        xy_a, xy_b: (K, 2) matched pixel positions.
        threshold: inlier distance in pixels.
        seed: RANSAC's random seed.

    Returns:
        (K,) bool inlier mask (all False when fewer than 8 matches or no model is found).
    """
    import cv2

    inliers = np.zeros(len(xy_a), bool)
    if len(xy_a) < 8:
        return inliers
    params = cv2.UsacParams()
    params.sampler = cv2.SAMPLING_UNIFORM
    params.score = cv2.SCORE_METHOD_MAGSAC
    params.loMethod = cv2.LOCAL_OPTIM_SIGMA
    params.threshold = float(threshold)
    params.confidence = 0.9999
    params.maxIterations = 10000
    params.randomGeneratorState = int(seed) % (2**31)
    try:
        F, mask = cv2.findFundamentalMat(xy_a, xy_b, mask=None, params=params)
    except cv2.error:  # MAGSAC asserts on degenerate samples (few, nearly collinear matches): no model
        return inliers
    if F is None or mask is None:
        return inliers
    return mask.reshape(-1).astype(bool)


@dataclass
class GuideView:
    """What guided matching knows of one frame.

    Attributes:
        features: its keypoints (original pixels) and descriptors.
        camera: its camera at original resolution.
        cam_from_world: (3, 4) its pose.
        depth: (N,) expected depth of each keypoint (the predicted depth, rescaled to the refined scene);
            NaN where unknown (then only the epipolar line constrains the match).
    """

    features: Features
    camera: Camera
    cam_from_world: np.ndarray
    depth: np.ndarray


def _segment(
    view_a: GuideView, view_b: GuideView, rows: slice, depth_range: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where keypoints ``rows`` of a may appear in b: the image of their viewing rays between depth / range
    and depth x range. Returns segment start (n, 2), unit direction (n, 2) and length (n,) in b's pixels; a
    keypoint without depth gets the ray from 1/100 to 100 times the median depth."""
    xy = view_a.features.xy[rows]
    depth = view_a.depth[rows]
    fallback = np.nanmedian(view_a.depth) if np.isfinite(view_a.depth).any() else 1.0
    near = np.where(np.isfinite(depth), depth / depth_range, fallback / 100.0)
    far = np.where(np.isfinite(depth), depth * depth_range, fallback * 100.0)
    start, z_start = project(
        view_b.camera, view_b.cam_from_world, unproject(view_a.camera, view_a.cam_from_world, xy, near)
    )
    end, z_end = project(
        view_b.camera, view_b.cam_from_world, unproject(view_a.camera, view_a.cam_from_world, xy, far)
    )
    delta = end - start
    length = np.linalg.norm(delta, axis=1)
    direction = delta / np.maximum(length, 1e-9)[:, None]
    bad = ~(np.isfinite(start).all(1) & np.isfinite(end).all(1))
    length[bad] = -np.inf  # a ray leaving b's field of view behind the camera: no candidate
    return np.nan_to_num(start), np.nan_to_num(direction), length


def _candidates(
    view_a: GuideView, view_b: GuideView, rows: slice, F: np.ndarray, epipolar_px: float, depth_range: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (row in ``rows``, keypoint of b) the geometry allows: near a's epipolar line, and between the
    projections of a's ray at the ends of its depth range."""
    xy_a, xy_b = view_a.features.xy[rows], view_b.features.xy
    lines = np.concatenate((xy_a, np.ones((len(xy_a), 1))), axis=1) @ F.T
    lines /= np.maximum(np.linalg.norm(lines[:, :2], axis=1, keepdims=True), 1e-12)
    near_line = np.abs(lines[:, :2] @ xy_b.T + lines[:, 2:]) < epipolar_px
    i, j = np.nonzero(near_line)
    seg_start, seg_dir, seg_len = _segment(view_a, view_b, rows, depth_range)
    along = np.einsum("nd,nd->n", seg_dir[i], xy_b[j] - seg_start[i])
    ok = (along > -epipolar_px) & (along < seg_len[i] + epipolar_px)
    return i[ok], j[ok]


def _candidate_scores(
    view_a: GuideView, view_b: GuideView, rows: slice, F: np.ndarray, epipolar_px: float, depth_range: float
) -> torch.Tensor:
    """(n, Nb) descriptor similarities of keypoints ``rows`` of a to all keypoints of b; -inf where the
    geometry rules a pair out."""
    i, j = _candidates(view_a, view_b, rows, F, epipolar_px, depth_range)
    desc_a = view_a.features.descriptors[rows]
    dot = np.einsum("nd,nd->n", desc_a[i], view_b.features.descriptors[j])
    score = torch.full((len(desc_a), len(view_b.features)), -torch.inf)
    score[torch.from_numpy(i), torch.from_numpy(j)] = torch.from_numpy(dot.astype(np.float32))
    return score


def guided_matches(
    view_a: GuideView, view_b: GuideView, epipolar_px: float, depth_range: float, ratio: float
) -> np.ndarray:
    """Matches allowed by known geometry: a keypoint of b is a candidate for a keypoint of a when it lies
    within ``epipolar_px`` of a's epipolar line and between the projections of a's ray at depth / range and
    depth x range; the best candidate by descriptor distance is kept when it passes the ratio test among the
    candidates and the match is mutual.

    Returns:
        (K, 2) int64 indices ``[index in a, index in b]``.
    """
    na, nb = len(view_a.features), len(view_b.features)
    if na == 0 or nb == 0:
        return np.zeros((0, 2), np.int64)
    F = fundamental_from_poses(
        view_a.camera.K(), view_a.cam_from_world, view_b.camera.K(), view_b.cam_from_world
    )
    blocks = (
        (rows, _candidate_scores(view_a, view_b, rows, F, epipolar_px, depth_range))
        for rows in _row_blocks(na)
    )
    return _mutual_matches(blocks, na, nb, ratio)
