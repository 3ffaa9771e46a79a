"""Evaluate reconstruction methods (a model, or a trivial baseline) on scenes with ground truth.

A *method* maps a sample dict to a prediction dict of numpy arrays: ``extrinsics`` (S, 3, 4), ``intrinsics``
(S, 3, 3), ``depth`` (S, H, W) and optionally ``world_points`` (S, H, W, 3) (otherwise the depth is unprojected
with the predicted cameras). Scores:

* cameras: relative rotation / translation-direction errors over all frame pairs, pooled over scenes, then
  AUC@30/15/5/3 and RRA/RTA@5/15/30 (:mod:`vggtkit.metrics.pose`);
* depth: AbsRel and delta < 1.25 after per-frame median scaling, averaged over frames;
* points: accuracy / completeness after a Sim(3) Umeyama alignment, in units of the normalised ground truth
  (first camera as world, mean point distance 1), averaged over scenes.
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

logger = logging.getLogger(__name__)

Method = Callable[[dict[str, Any]], dict[str, np.ndarray]]


# ----------------------------------------------------------------------------- methods
def model_method(
    model: torch.nn.Module, device: torch.device | str = "cpu", dtype: torch.dtype | None = None
) -> Method:
    """Wrap a model of any family as a method: one forward pass per scene (autocast ``dtype`` on the aggregator).

    Scenes whose image size is not a multiple of the model's patch size (a VGGT-Omega on 14-pixel scenes) are
    resized to the nearest multiples for the model, and its depth resized back; the cameras follow from the fields
    of view, which resizing keeps.
    """
    device = torch.device(device)
    model = model.to(device).eval()
    patch = model.config.patch_size

    def predict(sample: dict[str, Any]) -> dict[str, np.ndarray]:
        images = sample["images"].to(device)
        height, width = images.shape[-2:]
        model_hw = (max(patch, round(height / patch) * patch), max(patch, round(width / patch) * patch))
        if model_hw != (height, width):
            images = F.interpolate(images, size=model_hw, mode="bilinear", align_corners=False).clamp(0, 1)
        with (
            torch.no_grad(),
            torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None),
        ):
            out = model(images[None])
        depth = out["depth"][0, ..., 0].float()
        if model_hw != (height, width):
            depth = F.interpolate(depth[:, None], size=(height, width), mode="bilinear", align_corners=False)[
                :, 0
            ]
        extrinsics, intrinsics = pose_encoding_to_extri_intri(out["pose_enc"][0].float(), (height, width))
        pred = {
            "extrinsics": extrinsics.cpu().numpy(),
            "intrinsics": intrinsics.cpu().numpy(),
            "depth": depth.cpu().numpy(),
        }
        if "world_points" in out and model_hw == (height, width):
            pred["world_points_head"] = out["world_points"][0].float().cpu().numpy()
        return pred

    return predict


def identity_constant_baseline(sample: dict[str, Any]) -> dict[str, np.ndarray]:
    """The trivial baseline: every camera at the identity (so every relative pose is the identity) and a
    constant depth (per-frame median scaling turns it into the ground-truth median). Intrinsics are the ground
    truth's, which only helps the baseline's point cloud."""
    frames, _, height, width = sample["images"].shape
    extrinsics = np.tile(np.eye(4)[:3], (frames, 1, 1))
    return {
        "extrinsics": extrinsics,
        "intrinsics": np.asarray(sample["intrinsics"], dtype=np.float64),
        "depth": np.ones((frames, height, width), dtype=np.float32),
    }


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
        out["scenes"] = len(self.per_scene)
        return out


def normalized_ground_truth(sample: dict[str, Any]) -> dict[str, np.ndarray]:
    """The sample's cameras, depth and points in the training normalisation (first camera, unit mean distance)."""
    keys = ("extrinsics", "world_points", "point_masks", "depths")
    batch = {k: torch.as_tensor(sample[k])[None] for k in keys}
    normalised, _ = normalize_batch(batch)
    return {k: normalised[k][0].numpy() for k in keys}


def score_scene(pred: dict[str, np.ndarray], sample: dict[str, Any], scores: MethodScores) -> dict[str, Any]:
    """Score one prediction against the sample's ground truth and add it to ``scores``."""
    gt = normalized_ground_truth(sample)
    mask = gt["point_masks"].astype(bool)
    result: dict[str, Any] = {"scene": sample.get("seq_name", "")}
    if len(pred["extrinsics"]) >= 2:
        rot, trans = relative_pose_errors(
            torch.as_tensor(pred["extrinsics"]), torch.as_tensor(gt["extrinsics"])
        )
        scores.rot_err.append(rot)
        scores.trans_err.append(trans)
        result.update(rot_err_mean=float(rot.mean()), trans_err_mean=float(trans.mean()))
    if mask.any():
        depth = depth_metrics(pred["depth"], gt["depths"], mask)
        scores.depth_abs_rel.append(depth["abs_rel"])
        scores.depth_delta.append(depth["delta_1.25"])
        result.update(depth_abs_rel=depth["abs_rel"], depth_delta=depth["delta_1.25"])
        points = pred.get("world_points")
        if points is None:
            points = unproject_depth_map_to_point_map(pred["depth"], pred["extrinsics"], pred["intrinsics"])
        cloud = point_cloud_metrics(points, gt["world_points"], mask)
        scores.point_acc.append(cloud["accuracy"])
        scores.point_comp.append(cloud["completeness"])
        result.update(point_accuracy=cloud["accuracy"], point_completeness=cloud["completeness"])
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
