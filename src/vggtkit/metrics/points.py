"""Point-cloud accuracy and completeness after a Umeyama Sim(3) alignment."""

from __future__ import annotations

import numpy as np


def umeyama(
    src: np.ndarray, dst: np.ndarray, with_scale: bool = True
) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity transform with ``dst ~ s R src + t`` (Umeyama 1991).

    Args:
        src, dst: (N, 3) corresponding points, N >= 3 and not all collinear.
        with_scale: estimate the scale (Sim(3)); otherwise s = 1 (SE(3)).

    Returns:
        ``(s, R (3, 3), t (3,))``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3 or src.shape[0] < 3:
        raise ValueError(f"umeyama needs two (N, 3) arrays with N >= 3, got {src.shape} and {dst.shape}")
    mu_src, mu_dst = src.mean(0), dst.mean(0)
    src_c, dst_c = src - mu_src, dst - mu_dst
    cov = dst_c.T @ src_c / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1
    rot = u @ sign @ vt
    var_src = (src_c**2).sum() / len(src)
    scale = float(np.trace(np.diag(d) @ sign) / var_src) if with_scale and var_src > 0 else 1.0
    trans = mu_dst - scale * rot @ mu_src
    return scale, rot, trans


def point_cloud_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    mask: np.ndarray | None = None,
    max_points: int = 8_000,
    seed: int = 0,
) -> dict[str, float]:
    """Accuracy and completeness of a predicted point map after Sim(3) alignment to the ground truth.

    The alignment uses the pixel correspondences (Umeyama on valid pixels); then ``accuracy`` is the mean
    distance of each aligned predicted point to its nearest ground-truth point, ``completeness`` the mean
    distance of each ground-truth point to its nearest predicted point, and ``chamfer`` their mean. Distances
    are in the ground truth's units. Large clouds are subsampled to ``max_points`` (seeded).

    Args:
        pred, gt: (..., 3) point maps of the same shape (e.g. (S, H, W, 3)); mask: (...) bool valid pixels
            (default: finite in both).
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 3)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 3)
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt point maps differ in shape: {pred.shape} vs {gt.shape}")
    valid = np.isfinite(pred).all(-1) & np.isfinite(gt).all(-1)
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool).reshape(-1)
    pred, gt = pred[valid], gt[valid]
    if len(pred) < 3:
        raise ValueError("fewer than 3 valid points: cannot align the point clouds")
    rng = np.random.default_rng(seed)
    if len(pred) > max_points:
        keep = rng.choice(len(pred), max_points, replace=False)
        pred, gt = pred[keep], gt[keep]
    scale, rot, trans = umeyama(pred, gt)
    aligned = scale * pred @ rot.T + trans
    accuracy = float(np.mean(nearest_distances(aligned, gt)))
    completeness = float(np.mean(nearest_distances(gt, aligned)))
    return {"accuracy": accuracy, "completeness": completeness, "chamfer": 0.5 * (accuracy + completeness)}


def nearest_distances(queries: np.ndarray, points: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Distance from each query to its nearest point: (Q,) for (Q, 3) queries and (P, 3) points.

    Uses SciPy's k-d tree; where SciPy is not installed, exact brute force in float64 torch, in chunks of
    queries (slower, same result).
    """
    try:
        from scipy.spatial import cKDTree
    except ImportError:
        import torch

        ref = torch.as_tensor(points, dtype=torch.float64)
        query = torch.as_tensor(queries, dtype=torch.float64)
        parts = [torch.cdist(part, ref).min(dim=1).values for part in query.split(chunk)]
        return torch.cat(parts).numpy()
    return cKDTree(points).query(queries)[0]
