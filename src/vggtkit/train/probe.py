"""Scores on fixed scenes during training: what the model learned on scenes it trains on and on scenes it never
sees, so a learning curve separates memorising the training scenes from learning geometry.

Every probe scene is scored as ``vggtkit evaluate`` scores it (relative rotation error, AUC, depth AbsRel, track
error) plus the L1 distance of the final pose encoding to the ground truth's (translation and quaternion parts,
as in the camera loss), next to the same distance for the constant prediction "identity rotation, zero
translation": a camera loss at the constant's level means the model learned no relative pose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from vggtkit.data.batches import SceneSource, add_point_maps
from vggtkit.data.synthetic import load_heldout_set, render_scene
from vggtkit.data.tracks import make_tracks
from vggtkit.eval.runner import MethodScores, model_method, normalized_ground_truth, score_scene
from vggtkit.geometry import extri_intri_to_pose_encoding, standardize_quat

PROBE_FRAMES = 5
_SUMMARY_KEYS = ("rot_err_mean", "auc@30", "rot_auc@30", "depth_abs_rel", "track_err_median")


def heldout_probe_scenes(count: int, image_size: tuple[int, int]) -> list[dict[str, Any]]:
    """The first ``count`` scenes of the shipped held-out set, rendered at ``image_size``."""
    heldout = load_heldout_set()
    config = replace(heldout.config, image_size=tuple(image_size))
    return [render_scene(config, seed) for seed in heldout.seeds[:count]]


def training_probe_scenes(
    source: SceneSource, count: int, frames: int = PROBE_FRAMES, num_tracks: int = 64
) -> list[dict[str, Any]]:
    """The first ``count`` training scenes, un-augmented, each as ``frames`` views spread over its trajectory
    (the first and last view included, as the held-out scenes span theirs), with ``num_tracks`` point tracks."""
    scenes = []
    keys = ("images", "depths", "point_masks", "extrinsics", "intrinsics")
    for index in range(min(count, len(source))):
        scene = source.scene(index)
        total = scene["images"].shape[0]
        idx = torch.linspace(0, total - 1, min(frames, total)).round().long()
        sample = add_point_maps({k: scene[k][idx] for k in keys})
        sample["tracks"], sample["track_vis_mask"] = make_tracks(
            torch.Generator().manual_seed(index),
            sample["world_points"],
            sample["depths"],
            sample["point_masks"],
            sample["extrinsics"],
            sample["intrinsics"],
            num_tracks,
        )
        scenes.append(sample)
    return scenes


def _pose_encoding_l1(pose_enc: np.ndarray, sample: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame mean L1 of the translation and quaternion parts: (prediction, constant prediction), each
    (2,) for (T, R)."""
    gt = normalized_ground_truth(sample)
    height, width = sample["images"].shape[-2:]
    encoding = extri_intri_to_pose_encoding(
        torch.as_tensor(gt["extrinsics"])[None].float(),
        torch.as_tensor(sample["intrinsics"])[None].float(),
        (height, width),
    )[0]
    target = torch.cat((encoding[:, :3], standardize_quat(encoding[:, 3:7])), -1).numpy()
    constant = np.zeros_like(target)
    constant[:, 6] = 1.0

    def parts(pred: np.ndarray) -> np.ndarray:
        error = np.abs(pred[:, :7] - target)
        return np.array([error[:, :3].mean(), error[:, 3:7].mean()])

    return parts(pose_enc), parts(constant)


def score_probe(
    model: torch.nn.Module, scenes: Sequence[dict[str, Any]], device: torch.device
) -> dict[str, float]:
    """Score ``model`` (put in eval mode) on ``scenes``.

    Returns:
        ``rot_err_mean``, ``auc@30``, ``rot_auc@30``, ``depth_abs_rel`` (and ``track_err_median`` with a track
        head) as ``vggtkit evaluate`` computes them; ``cam_T``/``cam_R``: mean L1 of the final pose encoding's
        translation/quaternion parts; ``const_T``/``const_R``: the same for the constant prediction.
    """
    method = model_method(model, device)
    scores = MethodScores()
    l1, l1_constant = np.zeros(2), np.zeros(2)
    for sample in scenes:
        pred = method(sample)
        score_scene(pred, sample, scores)
        ours, constant = _pose_encoding_l1(pred["pose_enc"], sample)
        l1, l1_constant = l1 + ours / len(scenes), l1_constant + constant / len(scenes)
    summary = scores.summary()
    out = {key: summary[key] for key in _SUMMARY_KEYS if key in summary}
    out.update(
        cam_T=float(l1[0]), cam_R=float(l1[1]), const_T=float(l1_constant[0]), const_R=float(l1_constant[1])
    )
    return out
