"""Evaluate reconstruction methods (a model, or a trivial baseline) on scenes with ground truth.

A *method* maps a sample dict to a prediction dict of numpy arrays: ``extrinsics`` (S, 3, 4), ``intrinsics``
(S, 3, 3), ``depth`` (S, H, W) (a model without a depth head leaves it out) and optionally ``world_points``
(S, H, W, 3) (otherwise the depth is unprojected with the predicted cameras), ``tracks`` (S, N, 2) and ``vis`` (S, N) for the sample's frame-0 track queries.
Scores:

* cameras: relative rotation / translation-direction errors over all frame pairs, pooled over scenes, then
  AUC@30/15/5/3 and RRA/RTA@5/15/30 (:mod:`vggtkit.metrics.pose`);
* depth: AbsRel and delta < 1.25 after per-frame median scaling, averaged over frames;
* points: accuracy / completeness after a Sim(3) Umeyama alignment, in units of the normalised ground truth
  (first camera as world, mean point distance 1), averaged over scenes;
* tracks (methods that return ``tracks`` and ``vis`` for the sample's frame-0 queries): pixel error of the
  visible points and visibility accuracy, pooled over scenes (:mod:`vggtkit.metrics.tracks`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vggtkit.data.normalize import normalize_batch
from vggtkit.geometry import pose_encoding_to_extri_intri, unproject_depth_map_to_point_map
from vggtkit.metrics.depth import depth_metrics
from vggtkit.metrics.points import point_cloud_metrics
from vggtkit.metrics.pose import pose_metrics, relative_pose_errors
from vggtkit.metrics.tracks import track_errors, track_metrics

logger = logging.getLogger(__name__)

Method = Callable[[dict[str, Any]], dict[str, np.ndarray]]


# ----------------------------------------------------------------------------- methods
def model_method(
    model: torch.nn.Module, device: torch.device | str = "cpu", dtype: torch.dtype | None = None
) -> Method:
    """Wrap a model of any family as a method: one forward pass per scene (autocast ``dtype`` on the aggregator).

    Scenes whose image size is not a multiple of the model's patch size (a VGGT-Omega on 14-pixel scenes) are
    resized to the nearest multiples for the model, and its depth and tracks brought back to the scene's size;
    the cameras follow from the fields of view, which resizing keeps. The prediction also holds the final pose
    encoding ``pose_enc`` (S, 9). A model with a track head also tracks the sample's frame-0 track queries
    (``tracks[0]``), when it has any.
    """
    device = torch.device(device)
    model = model.to(device).eval()
    patch = model.config.patch_size
    has_tracker = getattr(model, "track_head", None) is not None

    def predict(sample: dict[str, Any]) -> dict[str, np.ndarray]:
        images = sample["images"].to(device)
        height, width = images.shape[-2:]
        model_hw = (max(patch, round(height / patch) * patch), max(patch, round(width / patch) * patch))
        # (x, y) pixel scale from the scene's image to the model's
        scale = torch.tensor([model_hw[1] / width, model_hw[0] / height], device=device)
        if model_hw != (height, width):
            images = F.interpolate(images, size=model_hw, mode="bilinear", align_corners=False).clamp(0, 1)
        queries = _track_queries(sample, device) if has_tracker else None
        extra = {} if queries is None else {"query_points": queries * scale}
        with (
            torch.no_grad(),
            torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None),
        ):
            out = model(images[None], **extra)
        extrinsics, intrinsics = pose_encoding_to_extri_intri(out["pose_enc"][0].float(), (height, width))
        pred = {
            "pose_enc": out["pose_enc"][0].float().cpu().numpy(),
            "extrinsics": extrinsics.cpu().numpy(),
            "intrinsics": intrinsics.cpu().numpy(),
        }
        if "depth" in out:
            pred["depth"] = _resized_depth(out["depth"][0, ..., 0].float(), (height, width)).cpu().numpy()
        if "world_points" in out and model_hw == (height, width):
            pred["world_points_head"] = out["world_points"][0].float().cpu().numpy()
        if "track" in out:
            pred["tracks"] = (out["track"][0].float() / scale).cpu().numpy()
            pred["vis"] = out["vis"][0].float().cpu().numpy()
        return pred

    return predict


def _track_queries(sample: dict[str, Any], device: torch.device) -> torch.Tensor | None:
    """The sample's frame-0 track points as queries (1, N, 2) in pixels; None when it has none."""
    if "tracks" not in sample or sample["tracks"].shape[1] == 0:
        return None
    return torch.as_tensor(sample["tracks"][0], dtype=torch.float32, device=device)[None]


def _resized_depth(depth: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Depth maps (S, h, w) brought to the scene's (H, W) (bilinear), unchanged when they already have it."""
    if tuple(depth.shape[-2:]) == tuple(size):
        return depth
    return F.interpolate(depth[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def identity_constant_baseline(sample: dict[str, Any]) -> dict[str, np.ndarray]:
    """The trivial baseline: every camera at the identity (so every relative pose is the identity), a constant
    depth (per-frame median scaling turns it into the ground-truth median) and, for track queries, points that
    stay where they are and are always visible. Intrinsics are the ground truth's, which only helps the
    baseline's point cloud."""
    frames, _, height, width = sample["images"].shape
    extrinsics = np.tile(np.eye(4)[:3], (frames, 1, 1))
    pred = {
        "extrinsics": extrinsics,
        "intrinsics": np.asarray(sample["intrinsics"], dtype=np.float64),
        "depth": np.ones((frames, height, width), dtype=np.float32),
    }
    if "tracks" in sample:
        queries = np.asarray(sample["tracks"][0], dtype=np.float64)
        pred["tracks"] = np.broadcast_to(queries, (frames, *queries.shape)).copy()
        pred["vis"] = np.ones((frames, len(queries)))
    return pred


# ----------------------------------------------------------------------------- scoring
@dataclass
class MethodScores:
    """Accumulated errors of one method over scenes."""

    rot_err: list[np.ndarray] = field(default_factory=list)
    trans_err: list[np.ndarray] = field(default_factory=list)
    depth_abs_rel: list[float] = field(default_factory=list)
    depth_delta: list[float] = field(default_factory=list)
    point_acc: list[float] = field(default_factory=list)
    point_comp: list[float] = field(default_factory=list)
    track_err: list[np.ndarray] = field(default_factory=list)
    track_vis: list[np.ndarray] = field(default_factory=list)
    per_scene: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.rot_err:
            out.update(pose_metrics(np.concatenate(self.rot_err), np.concatenate(self.trans_err)))
        if self.depth_abs_rel:
            out["depth_abs_rel"] = float(np.mean(self.depth_abs_rel))
            out["depth_delta_1.25"] = float(np.mean(self.depth_delta))
        if self.point_acc:
            out["point_accuracy"] = float(np.mean(self.point_acc))
            out["point_completeness"] = float(np.mean(self.point_comp))
        if self.track_vis:
            out.update(track_metrics(np.concatenate(self.track_err), np.concatenate(self.track_vis)))
        out["scenes"] = len(self.per_scene)
        return out


def normalized_ground_truth(sample: dict[str, Any]) -> dict[str, np.ndarray]:
    """The sample's cameras, depth and points in the training normalisation (first camera, unit mean distance)."""
    keys = ("extrinsics", "world_points", "point_masks", "depths")
    batch = {k: torch.as_tensor(sample[k])[None] for k in keys}
    normalised, _ = normalize_batch(batch)
    return {k: normalised[k][0].numpy() for k in keys}


def _score_cameras(pred: dict[str, np.ndarray], gt: dict[str, np.ndarray], scores: MethodScores) -> dict:
    rot, trans = relative_pose_errors(torch.as_tensor(pred["extrinsics"]), torch.as_tensor(gt["extrinsics"]))
    scores.rot_err.append(rot)
    scores.trans_err.append(trans)
    return {"rot_err_mean": float(rot.mean()), "trans_err_mean": float(trans.mean())}


def _score_geometry(pred: dict[str, np.ndarray], gt: dict[str, np.ndarray], scores: MethodScores) -> dict:
    mask = gt["point_masks"].astype(bool)
    depth = depth_metrics(pred["depth"], gt["depths"], mask)
    scores.depth_abs_rel.append(depth["abs_rel"])
    scores.depth_delta.append(depth["delta_1.25"])
    points = pred.get("world_points")
    if points is None:
        points = unproject_depth_map_to_point_map(pred["depth"], pred["extrinsics"], pred["intrinsics"])
    cloud = point_cloud_metrics(points, gt["world_points"], mask)
    scores.point_acc.append(cloud["accuracy"])
    scores.point_comp.append(cloud["completeness"])
    return {
        "depth_abs_rel": depth["abs_rel"],
        "depth_delta": depth["delta_1.25"],
        "point_accuracy": cloud["accuracy"],
        "point_completeness": cloud["completeness"],
    }


def _score_tracks(pred: dict[str, np.ndarray], sample: dict[str, Any], scores: MethodScores) -> dict:
    errors, vis_correct = track_errors(
        pred["tracks"], pred["vis"], np.asarray(sample["tracks"]), np.asarray(sample["track_vis_mask"])
    )
    scores.track_err.append(errors)
    scores.track_vis.append(vis_correct)
    return track_metrics(errors, vis_correct)


def score_scene(pred: dict[str, np.ndarray], sample: dict[str, Any], scores: MethodScores) -> dict[str, Any]:
    """Score one prediction against the sample's ground truth and add it to ``scores``."""
    gt = normalized_ground_truth(sample)
    result: dict[str, Any] = {"scene": sample.get("seq_name", "")}
    if len(pred["extrinsics"]) >= 2:
        result.update(_score_cameras(pred, gt, scores))
    if "depth" in pred and gt["point_masks"].any():
        result.update(_score_geometry(pred, gt, scores))
    if "tracks" in pred and "tracks" in sample:
        result.update(_score_tracks(pred, sample, scores))
    scores.per_scene.append(result)
    return result


def evaluate_methods(
    methods: dict[str, Method],
    samples: Iterable[dict[str, Any]],
    progress: Callable[[int], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run every method on every sample and summarise.

    Args:
        methods: name -> method.
        samples: sample dicts with ground truth (images, extrinsics, intrinsics, depths, world_points, point_masks).
        progress: called with the number of scenes done after each scene.

    Returns:
        name -> {"summary": {metric: value}, "scenes": [per-scene results]}.
    """
    scores = {name: MethodScores() for name in methods}
    done = 0
    for sample in samples:
        for name, method in methods.items():
            score_scene(method(sample), sample, scores[name])
        done += 1
        if progress is not None:
            progress(done)
    if done == 0:
        raise ValueError("no scenes to evaluate")
    return {name: {"summary": s.summary(), "scenes": s.per_scene} for name, s in scores.items()}
