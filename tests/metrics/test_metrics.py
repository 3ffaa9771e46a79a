"""Pose, depth and point-cloud metrics on cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vggtkit.geometry import quat_to_mat
from vggtkit.metrics.depth import depth_metrics, median_scale
from vggtkit.metrics.points import point_cloud_metrics, umeyama
from vggtkit.metrics.pose import accuracy_at, pose_auc, pose_metrics, relative_pose_errors


def _rot_z(deg: float) -> torch.Tensor:
    a = math.radians(deg)
    return torch.tensor([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1.0]])


def _poses(rots, trans) -> torch.Tensor:
    return torch.stack(
        [
            torch.cat((r, torch.tensor(t, dtype=torch.float32)[:, None]), 1)
            for r, t in zip(rots, trans, strict=True)
        ]
    )


def test_relative_errors_are_zero_for_a_similarity_transformed_prediction():
    rng = torch.Generator().manual_seed(0)
    quats = torch.nn.functional.normalize(torch.randn(5, 4, generator=rng), dim=-1)
    gt = torch.cat((quat_to_mat(quats), torch.randn(5, 3, 1, generator=rng)), dim=-1).double()
    # the same cameras in another world frame and scale: E' = [R | s t] composed with a world transform
    world = torch.eye(4, dtype=torch.float64)
    world[:3, :3] = _rot_z(33).double()
    world[:3, 3] = torch.tensor([1.0, -2.0, 0.5])
    pred = gt @ world
    pred[:, :, 3] *= 3.7
    rot, trans = relative_pose_errors(pred, gt)
    assert rot.shape == (10,) and trans.shape == (10,)
    # mat_to_quat works in float32 precision: allow round-off of a few hundredths of a degree
    assert rot.max() < 0.1 and trans.max() < 1e-4


def test_relative_rotation_and_translation_angles_by_hand():
    gt = _poses([torch.eye(3), torch.eye(3)], [[0, 0, 0], [1, 0, 0]])
    pred = _poses([torch.eye(3), _rot_z(10)], [[0, 0, 0], [1, 1, 0]])
    rot, trans = relative_pose_errors(pred, gt)
    assert rot[0] == pytest.approx(10, abs=1e-3)
    # P_01 translation = -R_1^T t_1: gt (-1, 0, 0); pred (1, 1, 0) (45 degrees) turned by -10 -> 35 degrees apart
    assert trans[0] == pytest.approx(35, abs=1e-2)
    # identity predictions have no translation direction: 90 degrees
    ident = _poses([torch.eye(3)] * 2, [[0, 0, 0]] * 2)
    assert relative_pose_errors(ident, gt)[1][0] == pytest.approx(90, abs=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        relative_pose_errors(gt[:1], gt[:1])


def test_auc_is_the_mean_over_integer_thresholds():
    # errors 0.5 -> counted below every t in 1..30; 10.5 -> counted for t = 11..30 (20 of 30); 40 -> never
    rot = np.array([0.5, 10.5, 40.0])
    trans = np.zeros(3)
    expected = (30 / 30 + 20 / 30 + 0) / 3
    assert pose_auc(rot, trans, 30) == pytest.approx(expected)
    assert pose_auc(np.array([30.0]), np.zeros(1), 30) == pytest.approx(1 / 30)  # last bin includes 30
    assert pose_auc(np.zeros(4), np.full(4, 5.5), 5) == 0
    assert accuracy_at(np.array([1.0, 5.0, 7.0]), 5) == pytest.approx(1 / 3)
    summary = pose_metrics(rot, trans)
    assert summary["auc@30"] == pytest.approx(expected) and summary["rra@15"] == pytest.approx(2 / 3)


def test_depth_metrics_are_scale_invariant_and_hand_checked():
    gt = np.full((2, 4, 4), 2.0)
    gt[:, :, 2:] = 4.0
    assert depth_metrics(gt * 0.3, gt)["abs_rel"] == pytest.approx(0, abs=1e-12)
    const = np.ones_like(gt)
    out = depth_metrics(const, gt)
    # median of {2 x8, 4 x8} = 3: |3-2|/2 = 0.5 and |3-4|/4 = 0.25 -> mean 0.375; ratio 1.5 and 1.33 both >= 1.25
    assert out["abs_rel"] == pytest.approx(0.375)
    assert out["delta_1.25"] == 0
    mask = np.zeros_like(gt, dtype=bool)
    mask[:, :, :2] = True
    assert depth_metrics(const, gt, mask)["abs_rel"] == pytest.approx(0)
    assert median_scale(np.zeros(3), np.ones(3), np.ones(3, bool)) == 1.0
    with pytest.raises(ValueError, match="no frame"):
        depth_metrics(const, np.zeros_like(gt))


def test_umeyama_recovers_a_similarity_and_point_metrics_vanish_after_alignment():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(200, 3))
    rot = _rot_z(40).numpy().astype(np.float64)
    dst = 2.5 * src @ rot.T + np.array([1.0, 2.0, 3.0])
    scale, r, t = umeyama(src, dst)
    assert scale == pytest.approx(2.5) and np.allclose(r, rot) and np.allclose(t, [1, 2, 3])
    out = point_cloud_metrics(src, dst)
    assert out["accuracy"] < 1e-6 and out["completeness"] < 1e-6
    noisy = point_cloud_metrics(src + rng.normal(scale=0.05, size=src.shape), src)
    assert 0 < noisy["accuracy"] < 0.1
    with pytest.raises(ValueError, match="N >= 3"):
        umeyama(src[:2], dst[:2])


def test_nearest_distances_without_scipy_match_the_kd_tree(monkeypatch):
    import builtins

    from vggtkit.metrics.points import nearest_distances

    rng = np.random.default_rng(0)
    queries, points = rng.normal(size=(300, 3)), rng.normal(size=(500, 3))
    with_tree = nearest_distances(queries, points)
    real_import = builtins.__import__

    def no_scipy(name, *args, **kwargs):
        if name.startswith("scipy"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    np.testing.assert_allclose(nearest_distances(queries, points, chunk=64), with_tree, rtol=1e-9, atol=1e-12)
