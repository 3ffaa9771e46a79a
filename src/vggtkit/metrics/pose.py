"""Relative camera pose errors and AUC, as the VGGT Co3D evaluation computes them (spec section 11)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from vggtkit.geometry import closed_form_inverse_se3, mat_to_quat

_EPS = 1e-15
_DEFAULT_ERROR = 1e6


def _homogeneous(extrinsics: Tensor) -> Tensor:
    extrinsics = torch.as_tensor(extrinsics, dtype=torch.float64)
    if extrinsics.ndim != 3 or extrinsics.shape[-2:] not in ((3, 4), (4, 4)):
        raise ValueError(f"extrinsics must be (S, 3, 4) or (S, 4, 4), got {tuple(extrinsics.shape)}")
    if extrinsics.shape[-2] == 4:
        return extrinsics
    bottom = torch.zeros(extrinsics.shape[0], 1, 4, dtype=extrinsics.dtype)
    bottom[..., 0, 3] = 1
    return torch.cat((extrinsics, bottom), dim=1)


def _pairs(n: int) -> tuple[Tensor, Tensor]:
    i, j = torch.triu_indices(n, n, offset=1)
    return i, j


def relative_pose_errors(pred_extrinsics: Tensor, gt_extrinsics: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Rotation and translation-direction errors of all relative poses ``P_ij = E_i inv(E_j)``, i < j.

    Rotation error: ``arccos(1 - 2 clamp(1 - (q_pred . q_gt)^2, 1e-15))`` (the geodesic angle). Translation
    error: the angle between the unit relative translations, ``arccos(sqrt(1 - clamp(1 - (t_pred . t_gt)^2,
    1e-15)))``, folded by the sign ambiguity ``min(a, |180 - a|)``; non-finite values become 1e6. Both in
    degrees. The errors are scale-free, so predictions need no alignment. A zero relative translation (for
    example identity poses) has no direction and scores 90 degrees.

    Args:
        pred_extrinsics, gt_extrinsics: (S, 3, 4) or (S, 4, 4) ``cam_from_world``, S >= 2.

    Returns:
        ``(rot_err_deg, trans_err_deg)``, each (S (S - 1) / 2,) float64.
    """
    pred, gt = _homogeneous(pred_extrinsics), _homogeneous(gt_extrinsics)
    if pred.shape != gt.shape:
        raise ValueError(f"predicted {tuple(pred.shape)} and ground-truth {tuple(gt.shape)} cameras differ")
    if pred.shape[0] < 2:
        raise ValueError("relative pose errors need at least 2 cameras")
    i, j = _pairs(pred.shape[0])
    rel_pred = pred[i] @ closed_form_inverse_se3(pred[j])
    rel_gt = gt[i] @ closed_form_inverse_se3(gt[j])

    q_pred = mat_to_quat(rel_pred[:, :3, :3])
    q_gt = mat_to_quat(rel_gt[:, :3, :3])
    dot = (q_pred * q_gt).sum(-1)
    rot = torch.rad2deg(torch.arccos((1 - 2 * torch.clamp(1 - dot**2, min=_EPS)).clamp(-1, 1)))

    t_pred = rel_pred[:, :3, 3]
    t_gt = rel_gt[:, :3, 3]
    t_pred = t_pred / (t_pred.norm(dim=-1, keepdim=True) + _EPS)
    t_gt = t_gt / (t_gt.norm(dim=-1, keepdim=True) + _EPS)
    loss = torch.clamp(1 - (t_pred * t_gt).sum(-1) ** 2, min=_EPS)
    trans = torch.rad2deg(torch.arccos(torch.sqrt(1 - loss)))
    trans = torch.minimum(trans, (180 - trans).abs())
    rot = torch.where(torch.isfinite(rot), rot, torch.full_like(rot, _DEFAULT_ERROR))
    trans = torch.where(torch.isfinite(trans), trans, torch.full_like(trans, _DEFAULT_ERROR))
    return rot.numpy(), trans.numpy()


def pose_auc(rot_err: np.ndarray, trans_err: np.ndarray, max_threshold: int = 30) -> float:
    """AUC@max_threshold of ``max(rot_err, trans_err)``: the mean over t = 1..max_threshold of the fraction of pairs
    with error < t (the last bin also counts errors equal to max_threshold), as a fraction in [0, 1].

    Args:
        rot_err, trans_err: (P,) errors in degrees.
        max_threshold: integer threshold in degrees.
    """
    if max_threshold < 1:
        raise ValueError(f"max_threshold must be >= 1, got {max_threshold}")
    errors = np.maximum(np.asarray(rot_err, dtype=np.float64), np.asarray(trans_err, dtype=np.float64))
    if errors.size == 0:
        raise ValueError("no pose pairs to score")
    histogram, _ = np.histogram(errors, bins=np.arange(max_threshold + 1))
    normalised = histogram.astype(np.float64) / errors.size
    return float(np.mean(np.cumsum(normalised)))


def accuracy_at(errors: np.ndarray, threshold: float) -> float:
    """Fraction of errors strictly below ``threshold`` (RRA@t or RTA@t)."""
    errors = np.asarray(errors, dtype=np.float64)
    if errors.size == 0:
        raise ValueError("no errors to score")
    return float(np.mean(errors < threshold))


def pose_metrics(
    rot_err: np.ndarray, trans_err: np.ndarray, thresholds: tuple[int, ...] = (30, 15, 5, 3)
) -> dict:
    """AUC@t for each threshold plus RRA@t/RTA@t at 5, 15 and 30 degrees (fractions), the rotation-only
    AUC@30 (how well rotations alone are recovered), and the mean and median errors in degrees."""
    out: dict[str, float] = {}
    for t in thresholds:
        out[f"auc@{t}"] = pose_auc(rot_err, trans_err, t)
    for t in (5, 15, 30):
        out[f"rra@{t}"] = accuracy_at(rot_err, t)
        out[f"rta@{t}"] = accuracy_at(trans_err, t)
    out["rot_auc@30"] = pose_auc(rot_err, np.zeros_like(rot_err), 30)
    out["rot_err_mean"] = float(np.mean(rot_err))
    out["rot_err_median"] = float(np.median(rot_err))
    out["trans_err_median"] = float(np.median(trans_err))
    return out
