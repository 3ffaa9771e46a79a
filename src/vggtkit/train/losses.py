"""Training losses of VGGT: camera, depth / point-map regression with aleatoric confidence, and tracks.

Two variants, selected by :class:`LossConfig.variant`:

* ``"released"`` (default): what the released training code runs (spec section 10.3). Camera: L1 on the pose
  encoding with iteration weights 0.6^(n-1-k); depth/points: the confidence term ``gamma*err*conf -
  alpha*log(conf)`` *and* the plain error, both quantile-filtered at 0.98, plus an un-weighted multi-scale
  gradient loss ("grad") or a normal loss ("normal", points).
* ``"paper"``: the formulation of the CVPR paper. Camera: Huber loss; depth/points: confidence-weighted error
  plus confidence-weighted gradient error minus ``alpha*log(conf)``, with no plain term and no filtering.

The track loss (not implemented upstream) follows the paper and the commented draft: L1 over refinement
iterations (weights 0.8^(n-1-k)) on points visible in the query frame and the current frame, BCE on visibility,
and BCE of the confidence against "error < 3 px".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from vggtkit.geometry import extri_intri_to_pose_encoding, standardize_quat

LOSS_VARIANTS = ("released", "paper")
CAMERA_DISTANCES = ("l1", "l2", "huber")
GRADIENT_LOSSES = ("grad", "grad+conf", "normal", "normal+conf", "none")
DEPTH_SPACES = ("linear", "log")


@dataclass(frozen=True)
class LossConfig:
    """Weights and options of the multi-task objective.

    Attributes:
        variant: "released" (the official training code) or "paper" (the paper's formulation).
        camera_weight, depth_weight, point_weight, track_weight: task weights; 0 switches a task off.
        camera_distance: "l1", "l2" or "huber"; None picks the variant's ("l1" released, "huber" paper).
        camera_gamma: iteration weight base: stage k of n gets camera_gamma ** (n - 1 - k).
        weight_trans, weight_rot, weight_fov: weights of the translation, quaternion and field-of-view parts.
        huber_delta: transition point of the Huber distance.
        conf_gamma, conf_alpha: the aleatoric terms ``gamma * err * conf - alpha * log(conf)``.
        valid_range: quantile of the released variant's outlier filter (<= 0 disables it).
        depth_gradient_loss, point_gradient_loss: "grad", "grad+conf", "normal", "normal+conf" or "none".
        track_gamma: iteration weight base of the track position loss.
        track_conf_threshold: pixel error under which a track counts as confident.
        depth_space: "linear" (as released: errors in normalised scene units, dominated by far surfaces) or
            "log" (a vggtkit extension: the same terms on log depth, so errors count relative to the depth, as
            the AbsRel metric does).
    """

    variant: str = "released"
    camera_weight: float = 5.0
    depth_weight: float = 1.0
    point_weight: float = 0.0
    track_weight: float = 0.0
    camera_distance: str | None = None
    camera_gamma: float = 0.6
    weight_trans: float = 1.0
    weight_rot: float = 1.0
    weight_fov: float = 0.5
    huber_delta: float = 1.0
    conf_gamma: float = 1.0
    conf_alpha: float = 0.2
    valid_range: float = 0.98
    depth_gradient_loss: str = "grad"
    point_gradient_loss: str = "normal"
    track_gamma: float = 0.8
    track_conf_threshold: float = 3.0
    depth_space: str = "linear"

    def __post_init__(self) -> None:
        self._check_choices()
        for name in ("camera_weight", "depth_weight", "point_weight", "track_weight", "conf_alpha"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.camera_gamma <= 1 or not 0 < self.track_gamma <= 1:
            raise ValueError("camera_gamma and track_gamma must lie in (0, 1]")
        if self.valid_range >= 1:
            raise ValueError(
                f"valid_range must be < 1 (a quantile; <= 0 disables filtering), got {self.valid_range}"
            )
        if self.huber_delta <= 0:
            raise ValueError(f"huber_delta must be > 0, got {self.huber_delta}")

    def _check_choices(self) -> None:
        if self.depth_space not in DEPTH_SPACES:
            raise ValueError(f"depth_space must be one of {DEPTH_SPACES}, got {self.depth_space!r}")
        if self.variant not in LOSS_VARIANTS:
            raise ValueError(f"loss variant must be one of {LOSS_VARIANTS}, got {self.variant!r}")
        if self.camera_distance is not None and self.camera_distance not in CAMERA_DISTANCES:
            raise ValueError(
                f"camera_distance must be one of {CAMERA_DISTANCES} or null, got {self.camera_distance!r}"
            )
        for name in ("depth_gradient_loss", "point_gradient_loss"):
            if getattr(self, name) not in GRADIENT_LOSSES:
                raise ValueError(f"{name} must be one of {GRADIENT_LOSSES}, got {getattr(self, name)!r}")

    @property
    def resolved_camera_distance(self) -> str:
        if self.camera_distance is not None:
            return self.camera_distance
        return "l1" if self.variant == "released" else "huber"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LossConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown loss option(s) {unknown}; known: {sorted(known)}")
        return cls(**d)


# ----------------------------------------------------------------------------- helpers
def check_and_fix_inf_nan(t: Tensor, hard_max: float | None = 100.0) -> Tensor:
    """NaN and +-inf become 0, then values are clamped to [-hard_max, hard_max] (unless hard_max is None)."""
    t = torch.nan_to_num(t, nan=0.0, posinf=0.0, neginf=0.0)
    return t if hard_max is None else t.clamp(-hard_max, hard_max)


def filter_by_quantile(
    loss: Tensor, valid_range: float, min_elements: int = 1000, hard_max: float = 100.0
) -> Tensor:
    """Drop the largest per-pixel losses, as the released code does.

    With more than ``min_elements`` values: clamp at ``hard_max``; threshold = min(``valid_range`` quantile
    (nearest rank, computed on a 1 M subsample when there are over 1e8 values), hard_max); keep the values below
    the threshold when more than ``min_elements`` remain.

    Args:
        loss: (N,) per-element losses.

    Returns:
        the kept (M,) losses (M <= N).
    """
    if valid_range <= 0 or loss.numel() <= min_elements:
        return loss
    sample = loss.detach()
    if sample.numel() > 1e8:
        sample = sample[torch.randperm(sample.numel(), device=sample.device)[:1_000_000]]
    loss = loss.clamp(max=hard_max)
    sample = sample.clamp(max=hard_max).float()
    k = int(round(valid_range * (sample.numel() - 1))) + 1
    threshold = min(float(torch.kthvalue(sample.flatten(), k).values), hard_max)
    keep = loss < threshold
    if int(keep.sum()) > min_elements:
        return loss[keep]
    return loss


def _distance(pred: Tensor, target: Tensor, kind: str, delta: float) -> Tensor:
    if kind == "l1":
        return (pred - target).abs()
    if kind == "l2":
        return (pred - target) ** 2
    return F.huber_loss(pred, target, reduction="none", delta=delta)


# ----------------------------------------------------------------------------- camera
def camera_loss(
    pose_enc_list: list[Tensor],
    gt_extrinsics: Tensor,
    gt_intrinsics: Tensor,
    image_hw: tuple[int, int],
    point_masks: Tensor,
    config: LossConfig,
) -> dict[str, Tensor]:
    """Camera loss over all refinement iterations.

    Args:
        pose_enc_list: n tensors (B, S, 9), the camera head's iterations (last = final).
        gt_extrinsics: (B, S, 3, 4) normalised ``cam_from_world``; gt_intrinsics: (B, S, 3, 3).
        image_hw: (H, W) of the images, for the field of view.
        point_masks: (B, S, H, W) bool; a sequence counts when frame 0 has more than 100 valid pixels.
        config: loss options (distance, gamma, part weights).

    Returns:
        dict with ``loss_camera`` = w_T L_T + w_R L_R + w_FL L_FL and the parts ``loss_T``, ``loss_R``, ``loss_FL``.
    """
    if not pose_enc_list:
        raise ValueError("pose_enc_list is empty: the camera head produced no iterations")
    gt = extri_intri_to_pose_encoding(gt_extrinsics, gt_intrinsics, image_hw).to(pose_enc_list[-1])
    gt = torch.cat((gt[..., :3], standardize_quat(gt[..., 3:7]), gt[..., 7:]), dim=-1)
    valid = point_masks[:, 0].sum(dim=(-1, -2)) > 100  # B
    kind = config.resolved_camera_distance
    n = len(pose_enc_list)
    total = {"T": 0.0, "R": 0.0, "FL": 0.0}
    for k, pred in enumerate(pose_enc_list):
        weight = config.camera_gamma ** (n - 1 - k)
        if valid.any():
            p, g = pred[valid], gt[valid]
            parts = {
                "T": _distance(p[..., :3], g[..., :3], kind, config.huber_delta).clamp(max=100).mean(),
                "R": _distance(p[..., 3:7], g[..., 3:7], kind, config.huber_delta).mean(),
                "FL": _distance(p[..., 7:], g[..., 7:], kind, config.huber_delta).mean(),
            }
        else:
            zero = 0.0 * pred.sum()
            parts = {"T": zero, "R": zero, "FL": zero}
        for key in total:
            total[key] = total[key] + weight * parts[key]
    loss_t, loss_r, loss_fl = (total[k] / n for k in ("T", "R", "FL"))
    loss = config.weight_trans * loss_t + config.weight_rot * loss_r + config.weight_fov * loss_fl
    return {"loss_camera": loss, "loss_T": loss_t, "loss_R": loss_r, "loss_FL": loss_fl}


# ----------------------------------------------------------------------------- gradients and normals
def gradient_loss(
    pred: Tensor, gt: Tensor, mask: Tensor, conf: Tensor | None = None, gamma: float = 1.0, alpha: float = 0.2
) -> Tensor:
    """First-difference (gradient) error of ``pred - gt`` between valid neighbours.

    Args:
        pred, gt: (N, H, W, C); mask: (N, H, W) bool; conf: optional (N, H, W) confidence > 0.

    Returns:
        scalar (sum of x and y terms) / (number of valid pixels * C); 0 when nothing is valid.
    """
    channels = pred.shape[-1]
    m = mask[..., None].to(pred.dtype).expand_as(pred)
    count = m.sum()
    if count == 0:
        return 0.0 * pred.sum()
    diff = (pred - gt) * m
    grad_x = (diff[:, :, 1:] - diff[:, :, :-1]).abs() * (m[:, :, 1:] * m[:, :, :-1])
    grad_y = (diff[:, 1:] - diff[:, :-1]).abs() * (m[:, 1:] * m[:, :-1])
    grad_x, grad_y = grad_x.clamp(max=100), grad_y.clamp(max=100)
    if conf is not None:
        conf_x, conf_y = conf[:, :, 1:, None], conf[:, 1:, :, None]
        grad_x = gamma * grad_x * conf_x - alpha * torch.log(conf_x)
        grad_y = gamma * grad_y * conf_y - alpha * torch.log(conf_y)
    del channels
    return (grad_x.sum() + grad_y.sum()) / count


def point_map_normals(points: Tensor, mask: Tensor, eps: float = 1e-8) -> tuple[Tensor, Tensor]:
    """Four neighbour-cross-product normals per pixel (up x left, left x down, down x right, right x up).

    Args:
        points: (N, H, W, 3); mask: (N, H, W) bool.

    Returns:
        normals (4, N, H, W, 3) unit vectors and validity (4, N, H, W) (centre and both neighbours valid).
    """
    padded = F.pad(points.permute(0, 3, 1, 2), (1, 1, 1, 1)).permute(0, 2, 3, 1)
    pmask = F.pad(mask[:, None].float(), (1, 1, 1, 1))[:, 0] > 0
    up, left = padded[:, :-2, 1:-1] - points, padded[:, 1:-1, :-2] - points
    down, right = padded[:, 2:, 1:-1] - points, padded[:, 1:-1, 2:] - points
    m_up, m_left, m_down, m_right = (
        pmask[:, :-2, 1:-1],
        pmask[:, 1:-1, :-2],
        pmask[:, 2:, 1:-1],
        pmask[:, 1:-1, 2:],
    )
    pairs = (
        (up, left, m_up, m_left),
        (left, down, m_left, m_down),
        (down, right, m_down, m_right),
        (right, up, m_right, m_up),
    )
    normals, valid = [], []
    for a, b, ma, mb in pairs:
        n = torch.linalg.cross(a, b, dim=-1)
        normals.append(n / (n.norm(dim=-1, keepdim=True) + eps))
        valid.append(mask & ma & mb)
    return torch.stack(normals), torch.stack(valid)


def normal_loss(
    pred: Tensor, gt: Tensor, mask: Tensor, conf: Tensor | None = None, gamma: float = 1.0, alpha: float = 0.2
) -> Tensor:
    """1 - cos between predicted and ground-truth surface normals of point maps.

    Args:
        pred, gt: (N, H, W, 3) point maps; mask: (N, H, W) bool; conf: optional (N, H, W).

    Returns:
        scalar mean over the normals valid in the ground truth; 0 when fewer than 10 are valid.
    """
    pred_n, _ = point_map_normals(pred.float(), mask)
    gt_n, valid = point_map_normals(gt.float(), mask)
    if int(valid.sum()) < 10:
        return 0.0 * pred.sum()
    eps = 1e-6
    cos = (pred_n[valid] * gt_n[valid]).sum(-1).clamp(-1 + eps, 1 - eps)
    loss = 1 - cos
    if conf is not None:
        c = conf[None].expand(4, *conf.shape)[valid]
        loss = gamma * loss * c - alpha * torch.log(c)
    return loss.mean()


def _multi_scale(
    fn, pred: Tensor, gt: Tensor, mask: Tensor, conf: Tensor | None, scales: int, **kw: float
) -> Tensor:
    total = 0.0
    for scale in range(scales):
        step = 2**scale
        sub_conf = conf[:, ::step, ::step] if conf is not None else None
        total = total + fn(
            pred[:, ::step, ::step], gt[:, ::step, ::step], mask[:, ::step, ::step], sub_conf, **kw
        )
    return total / scales


# ----------------------------------------------------------------------------- depth and points
def regression_loss(
    pred: Tensor, gt: Tensor, mask: Tensor, conf: Tensor, config: LossConfig, gradient: str
) -> dict[str, Tensor]:
    """Depth or point-map regression with aleatoric confidence.

    Args:
        pred: (B, S, H, W, C) prediction (C = 1 depth, 3 points); gt: the same shape; mask: (B, S, H, W) bool;
        conf: (B, S, H, W) positive confidence; config: loss options; gradient: the gradient-term kind.

    Returns:
        dict with ``conf`` (confidence-weighted error), ``reg`` (plain error; 0 in the paper variant) and
        ``grad`` (gradient or normal term). All three are 0 (with gradients) under 100 valid pixels.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ in shape")
    zero = 0.0 * pred.sum() + 0.0 * conf.sum()
    if int(mask.sum()) < 100:
        return {"conf": zero, "reg": zero, "grad": zero}
    gamma, alpha = config.conf_gamma, config.conf_alpha
    err = check_and_fix_inf_nan(torch.norm(gt[mask] - pred[mask], dim=-1))
    conf_m = conf[mask]
    loss_conf = gamma * err * conf_m - alpha * torch.log(conf_m)
    b, s, h, w, c = pred.shape
    flat = (pred.reshape(b * s, h, w, c), gt.reshape(b * s, h, w, c), mask.reshape(b * s, h, w))
    flat_conf = conf.reshape(b * s, h, w)
    paper = config.variant == "paper"
    kind = gradient.split("+")[0]
    weighted = paper or gradient.endswith("+conf")
    if kind == "grad":
        loss_grad = _multi_scale(
            gradient_loss, *flat, flat_conf if weighted else None, 4, gamma=gamma, alpha=alpha
        )
    elif kind == "normal":
        loss_grad = _multi_scale(
            normal_loss, *flat, flat_conf if weighted else None, 3, gamma=gamma, alpha=alpha
        )
    else:
        loss_grad = zero
    if paper:
        return {"conf": check_and_fix_inf_nan(loss_conf).mean(), "reg": zero, "grad": loss_grad}
    loss_conf = check_and_fix_inf_nan(filter_by_quantile(loss_conf, config.valid_range)).mean()
    loss_reg = check_and_fix_inf_nan(filter_by_quantile(err, config.valid_range)).mean()
    return {"conf": loss_conf, "reg": loss_reg, "grad": loss_grad}


# ----------------------------------------------------------------------------- tracks
def track_loss(
    track_list: list[Tensor],
    vis: Tensor,
    conf: Tensor | None,
    gt_tracks: Tensor,
    gt_vis: Tensor,
    config: LossConfig,
) -> dict[str, Tensor]:
    """Track loss: positions over iterations, visibility and confidence.

    Args:
        track_list: n tensors (B, S, N, 2), pixel (x, y) per refinement iteration (last = final).
        vis: (B, S, N) visibility probabilities in (0, 1); conf: optional (B, S, N) confidence probabilities.
        gt_tracks: (B, S, N, 2); gt_vis: (B, S, N) bool.
        config: loss options (``track_gamma``, ``track_conf_threshold``).

    Returns:
        dict with ``loss_track`` (position + visibility + confidence) and its parts ``loss_track_pos``,
        ``loss_track_vis``, ``loss_track_conf``.
    """
    if not track_list:
        raise ValueError("track_list is empty")
    gt_vis = gt_vis.bool()
    valid = gt_vis & gt_vis[:, :1]  # visible in the query frame and in the current frame
    n = len(track_list)
    zero = 0.0 * track_list[-1].sum()
    pos = zero
    if valid.any():
        for k, pred in enumerate(track_list):
            weight = config.track_gamma ** (n - 1 - k)
            pos = pos + weight * (pred - gt_tracks).abs().sum(-1)[valid].mean()
        pos = pos / n
    prob = vis.float().clamp(1e-6, 1 - 1e-6)
    loss_vis = F.binary_cross_entropy(prob, gt_vis.float())
    loss_conf = zero
    if conf is not None and valid.any():
        error = (track_list[-1] - gt_tracks).norm(dim=-1).detach()
        target = (error < config.track_conf_threshold).float()
        loss_conf = F.binary_cross_entropy(conf.float().clamp(1e-6, 1 - 1e-6)[valid], target[valid])
    total = pos + loss_vis + loss_conf
    return {
        "loss_track": total,
        "loss_track_pos": pos,
        "loss_track_vis": loss_vis,
        "loss_track_conf": loss_conf,
    }


# ----------------------------------------------------------------------------- objective
class MultitaskLoss(torch.nn.Module):
    """The weighted sum of the enabled task losses (the released objective by default).

    ``forward(predictions, batch)`` takes the model's output dict and a *normalised* batch (see
    :func:`vggtkit.data.normalize.normalize_batch`) with ``images`` (B, S, 3, H, W), ``extrinsics``,
    ``intrinsics``, ``depths``, ``world_points``, ``point_masks`` and, for tracks, ``tracks`` and
    ``track_vis_mask``. It returns a dict of scalars whose ``objective`` is the value to minimise.
    """

    def __init__(self, config: LossConfig | None = None) -> None:
        super().__init__()
        self.config = config or LossConfig()

    def forward(self, predictions: dict[str, Any], batch: dict[str, Any]) -> dict[str, Tensor]:
        cfg = self.config
        tasks = (
            (cfg.camera_weight, self._camera),
            (cfg.depth_weight, self._depth),
            (cfg.point_weight, self._points),
            (cfg.track_weight, self._tracks),
        )
        out: dict[str, Tensor] = {}
        objective = None
        for weight, task in tasks:
            if weight <= 0:
                continue
            total, parts = task(predictions, batch)
            out.update(parts)
            objective = weight * total if objective is None else objective + weight * total
        if objective is None:
            raise ValueError("every loss weight is 0: nothing to train")
        out["objective"] = objective
        return out

    # Each task returns (its total, the terms to log).
    def _camera(self, predictions: dict[str, Any], batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        if "pose_enc_list" not in predictions:
            raise ValueError("camera_weight > 0 but the model has no camera head (enable_camera=False)")
        parts = camera_loss(
            predictions["pose_enc_list"],
            batch["extrinsics"],
            batch["intrinsics"],
            tuple(batch["images"].shape[-2:]),
            batch["point_masks"],
            self.config,
        )
        return parts["loss_camera"], parts

    def _depth(self, predictions: dict[str, Any], batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        if "depth" not in predictions:
            raise ValueError("depth_weight > 0 but the model has no depth head (enable_depth=False)")
        pred_depth, gt_depth = predictions["depth"], batch["depths"][..., None]
        if self.config.depth_space == "log":
            pred_depth, gt_depth = pred_depth.clamp(min=1e-6).log(), gt_depth.clamp(min=1e-6).log()
        depth = regression_loss(
            pred_depth,
            gt_depth,
            batch["point_masks"],
            predictions["depth_conf"],
            self.config,
            self.config.depth_gradient_loss,
        )
        total = depth["conf"] + depth["reg"] + depth["grad"]
        return total, {f"loss_{k}_depth": v for k, v in depth.items()}

    def _points(self, predictions: dict[str, Any], batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        if "world_points" not in predictions:
            raise ValueError("point_weight > 0 but the model has no point head (enable_point=False)")
        point = regression_loss(
            predictions["world_points"],
            batch["world_points"],
            batch["point_masks"],
            predictions["world_points_conf"],
            self.config,
            self.config.point_gradient_loss,
        )
        total = point["conf"] + point["reg"] + point["grad"]
        return total, {f"loss_{k}_point": v for k, v in point.items()}

    def _tracks(self, predictions: dict[str, Any], batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        if "track_list" not in predictions:
            raise ValueError(
                "track_weight > 0 but the model produced no tracks (track head off or no queries)"
            )
        parts = track_loss(
            predictions["track_list"],
            predictions["vis"],
            predictions.get("conf"),
            batch["tracks"],
            batch["track_vis_mask"],
            self.config,
        )
        return parts["loss_track"], parts
