"""Refinement on synthetic scenes with exact ground truth: from perturbed cameras, and with the shipped model."""

from __future__ import annotations

import json

import numpy as np
import torch
from _refine_scenes import FRAMES, SIZE, rotation_errors

from vggtkit.metrics.pose import pose_auc, relative_pose_errors
from vggtkit.refine import RefineOptions, refine


def _centres(poses: np.ndarray) -> np.ndarray:
    return -np.einsum("sji,sj->si", poses[:, :, :3], poses[:, :, 3])


def test_recovers_perturbed_cameras(refined, truth) -> None:
    poses, K, _ = truth
    errors = rotation_errors(refined.reconstruction.extrinsic, poses)
    assert refined.report.status == "refined", refined.report.summary()
    assert refined.refined.all()
    assert errors.mean() < 0.5, errors  # from 3 degrees
    focal = np.array([c.focal_length for c in refined.cameras])
    np.testing.assert_allclose(focal, K[:, 0, 0], rtol=0.02)  # from 5 % too long
    # Camera centres match the truth up to one scale (the world is the first camera's).
    centres, true_centres = _centres(refined.reconstruction.extrinsic), _centres(poses)
    scale = np.linalg.norm(true_centres[1:], axis=1) / np.linalg.norm(centres[1:], axis=1)
    assert scale.std() / scale.mean() < 0.02, scale
    assert (
        np.linalg.norm(centres * scale.mean() - true_centres, axis=1).max()
        < 0.02 * np.abs(true_centres).max()
    )


def test_depth_rescaled_consistently(refined, truth, perturbed) -> None:
    """Each frame's depth is rescaled so that all frames agree with the refined cameras' scale."""
    poses, _, depth = truth
    rec = refined.reconstruction
    ratio = np.array([np.median(depth[i] / rec.depth[i, ..., 0]) for i in range(FRAMES)])
    assert ratio.std() / ratio.mean() < 0.02, ratio  # the noisy input is off by up to 5 % per frame
    np.testing.assert_allclose(
        rec.depth, perturbed.depth * refined.depth_scale[:, None, None, None], rtol=1e-5
    )
    # The world scale is the depth's: camera distances match the truth after the same factor.
    centres, true_centres = _centres(rec.extrinsic), _centres(poses)
    scale = np.linalg.norm(true_centres[1:], axis=1) / np.linalg.norm(centres[1:], axis=1)
    np.testing.assert_allclose(scale.mean(), ratio.mean(), rtol=0.03)
    # Derived arrays follow the refined cameras.
    from vggtkit.geometry import pose_encoding_to_extri_intri, unproject_depth_map_to_point_map

    points = unproject_depth_map_to_point_map(rec.depth, rec.extrinsic, rec.intrinsic)
    np.testing.assert_allclose(rec.world_points_from_depth, points, rtol=1e-4, atol=1e-5)
    extrinsic, intrinsic = pose_encoding_to_extri_intri(torch.from_numpy(rec.pose_enc).double(), rec.model_hw)
    np.testing.assert_allclose(extrinsic.numpy(), rec.extrinsic, atol=1e-5)
    np.testing.assert_allclose(intrinsic.numpy(), rec.intrinsic, rtol=1e-5)


def test_report(refined) -> None:
    report = refined.report
    data = json.loads(report.to_json())
    assert [f["name"] for f in data["frames"]] == refined.reconstruction.names
    assert data["status"] == "refined" and data["source"] == "sift" and data["anchor"] == "view_0.png"
    assert data["num_tracks"] == len(refined.tracks) > 100
    assert abs(data["mean_track_length"] - refined.mean_track_length) < 1e-3
    for frame in report.frames:
        assert frame.inliers_after > frame.inliers_before  # the perturbed cameras fit few correspondences
        assert frame.reproj_error_after < 1.0 < frame.reproj_error_before
        assert "focal_length" in frame.refined and ("pose" in frame.refined) == (frame.name != "view_0.png")
    assert "view_3.png" in report.summary()


def test_shipped_model_recovers_cameras(tmp_path, scene) -> None:
    """The shipped model's camera head has not learned relative poses; refinement recovers them."""
    from PIL import Image

    import vggtkit

    paths = []
    for i, image in enumerate(scene["images"].numpy()):
        paths.append(tmp_path / f"v{i}.png")
        Image.fromarray(np.rint(image.transpose(1, 2, 0) * 255).astype(np.uint8)).save(paths[-1])
    torch.manual_seed(0)
    rec = vggtkit.reconstruct(paths, model="tiny-synthetic", device="cpu", resolution=112)
    assert tuple(rec.original_hw[0]) == (SIZE, SIZE) and rec.model_hw == (112, 112)
    result = refine(rec)
    truth = scene["extrinsics"].double()
    before = pose_auc(*relative_pose_errors(torch.from_numpy(rec.extrinsic), truth))
    after = pose_auc(*relative_pose_errors(torch.from_numpy(result.reconstruction.extrinsic), truth))
    assert before < 0.1 and after > 0.8, (before, after, result.report.summary())


def test_same_result_twice(perturbed, refined) -> None:
    again = refine(perturbed, RefineOptions())
    np.testing.assert_allclose(again.reconstruction.extrinsic, refined.reconstruction.extrinsic, atol=1e-6)
