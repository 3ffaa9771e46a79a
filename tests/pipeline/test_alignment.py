"""Sim(3) algebra and the chunk-to-chunk alignment: known transforms recovered from synthetic predictions."""

from __future__ import annotations

import numpy as np
import pytest
from _sequences import trajectory
from scipy.spatial.transform import Rotation

from vggtkit.geometry import unproject_depth_map_to_point_map
from vggtkit.pipeline.alignment import estimate_sim3, weighted_umeyama
from vggtkit.pipeline.prediction import ChunkPrediction
from vggtkit.pipeline.sim3 import Sim3

TRUE = Sim3(2.7, Rotation.from_rotvec([0.4, -0.3, 2.0]).as_matrix(), [1.5, -2.0, 0.7])


def _random_sim3(rng: np.random.Generator) -> Sim3:
    return Sim3(np.exp(rng.normal()), Rotation.random(random_state=rng).as_matrix(), rng.normal(size=3))


def test_sim3_composition_inverse_and_coordinates() -> None:
    rng = np.random.default_rng(0)
    a, b = _random_sim3(rng), _random_sim3(rng)
    points = rng.normal(size=(5, 3))
    np.testing.assert_allclose((a @ b).apply(points), a.apply(b.apply(points)), atol=1e-12)
    np.testing.assert_allclose((a @ a.inverse()).matrix(), np.eye(4), atol=1e-12)
    np.testing.assert_allclose(Sim3.exp(a.log()).matrix(), a.matrix(), atol=1e-12)
    np.testing.assert_allclose((a @ b).matrix(), a.matrix() @ b.matrix(), atol=1e-12)
    with pytest.raises(ValueError, match="positive finite scale"):
        Sim3(0.0)


def test_transformed_cameras_see_transformed_points_at_scaled_depth() -> None:
    """A camera moved by a_from_b sees a_from_b(x) at ``scale`` times the depth it saw x at."""
    rng = np.random.default_rng(1)
    cam_from_b = np.concatenate(
        [Rotation.random(3, random_state=rng).as_matrix(), rng.normal(size=(3, 3, 1))], -1
    )
    points_b = rng.normal(size=(3, 4, 3))
    cam_from_a = TRUE.transform_cameras(cam_from_b)
    in_cam_b = np.einsum("nij,nkj->nki", cam_from_b[:, :, :3], points_b) + cam_from_b[:, None, :, 3]
    points_a = TRUE.apply(points_b)
    in_cam_a = np.einsum("nij,nkj->nki", cam_from_a[:, :, :3], points_a) + cam_from_a[:, None, :, 3]
    np.testing.assert_allclose(in_cam_a, TRUE.scale * in_cam_b, atol=1e-12)


def test_weighted_umeyama_minimises_the_weighted_error() -> None:
    rng = np.random.default_rng(2)
    src = rng.normal(size=(50, 3))
    dst = TRUE.apply(src) + 0.05 * rng.normal(size=(50, 3))
    weights = rng.uniform(0.1, 3.0, size=50)
    fit = weighted_umeyama(src, dst, weights)

    def cost(sim: Sim3) -> float:
        return float(weights @ ((dst - sim.apply(src)) ** 2).sum(-1))

    # Any small change of the solution costs more, and exact data gives the exact transform.
    for k in range(7):
        for step in (-1e-4, 1e-4):
            delta = np.zeros(7)
            delta[k] = step
            assert cost(fit @ Sim3.exp(delta)) > cost(fit)
    exact = weighted_umeyama(src, TRUE.apply(src), weights)
    np.testing.assert_allclose(exact.matrix(), TRUE.matrix(), atol=1e-12)


def _prediction(
    frames: list[int], noise: float = 0.0, outliers: float = 0.0, seed: int = 0
) -> ChunkPrediction:
    """Ground-truth cameras and depth of some frames of a rendered trajectory, in the world frame."""
    sample = trajectory(8)
    rng = np.random.default_rng(seed)
    depth = sample["depths"][frames].double().numpy()
    depth = depth * (1.0 + noise * rng.normal(size=depth.shape))
    wrong = rng.random(depth.shape) < outliers
    depth[wrong] *= rng.uniform(0.2, 4.0, size=int(wrong.sum()))
    conf = 1.0 + rng.random(depth.shape)
    n = len(frames)
    return ChunkPrediction(
        frames=frames,
        pose_enc=np.zeros((n, 9)),
        extrinsic=sample["extrinsics"][frames].double().numpy(),
        intrinsic=sample["intrinsics"][frames].double().numpy(),
        depth=depth[..., None].astype(np.float32),
        depth_conf=conf.astype(np.float32),
    )


def _moved(pred: ChunkPrediction, target_from_source: Sim3) -> ChunkPrediction:
    """The same prediction expressed in another frame: cameras moved, depth scaled."""
    return ChunkPrediction(
        pred.frames,
        pred.pose_enc,
        target_from_source.transform_cameras(pred.extrinsic),
        pred.intrinsic,
        (pred.depth * target_from_source.scale).astype(np.float32),
        pred.depth_conf,
    )


def _error(found: Sim3, truth: Sim3) -> tuple[float, float, float]:
    """(relative scale error, rotation error in degrees, translation error relative to its length)."""
    return (
        abs(found.scale / truth.scale - 1.0),
        float(np.degrees((found @ truth.inverse()).rotation_angle())),
        float(np.linalg.norm(found.translation - truth.translation) / np.linalg.norm(truth.translation)),
    )


def test_noise_free_predictions_give_the_exact_transform() -> None:
    source = _prediction([2, 3, 4])
    alignment = estimate_sim3(_moved(source, TRUE), source)
    # Exact to the float32 rounding of the depth maps.
    assert max(_error(alignment.target_from_source, TRUE)) < 1e-6
    assert alignment.inlier_fraction == 1.0 and alignment.median_residual < 1e-6
    # Unprojected with the found transform, the two chunks' points coincide.
    moved = _moved(source, alignment.target_from_source)
    np.testing.assert_allclose(
        unproject_depth_map_to_point_map(moved.depth, moved.extrinsic, moved.intrinsic),
        TRUE.apply(unproject_depth_map_to_point_map(source.depth, source.extrinsic, source.intrinsic)),
        rtol=1e-5,
        atol=1e-5,
    )


def test_noisy_predictions_give_a_close_transform() -> None:
    source = _prediction([2, 3, 4], noise=0.02, seed=1)
    target = _moved(_prediction([2, 3, 4], noise=0.02, seed=2), TRUE)
    scale, degrees, translation = _error(estimate_sim3(target, source).target_from_source, TRUE)
    assert scale < 2e-3 and degrees < 0.1 and translation < 2e-3, (scale, degrees, translation)


@pytest.mark.parametrize("noise", [0.0, 0.01])
def test_confident_outliers_do_not_move_the_transform(noise: float) -> None:
    """30 % of the target's pixels have a wrong depth, as confident as the good ones."""
    source = _prediction([2, 3, 4], noise=noise, seed=3)
    target = _moved(_prediction([2, 3, 4], noise=noise, outliers=0.3, seed=4), TRUE)
    alignment = estimate_sim3(target, source)
    tolerance = 1e-5 if noise == 0 else 2e-3
    scale, degrees, translation = _error(alignment.target_from_source, TRUE)
    assert scale < tolerance and translation < tolerance and degrees < 60 * tolerance, (
        scale,
        degrees,
        translation,
    )
    assert 0.6 < alignment.inlier_fraction < 0.8  # the outliers are found
    # Plain least squares on the same pairs is far off: the robust weights are what keeps the estimate.
    plain = _plain_fit(target, source)
    assert max(_error(plain, TRUE)) > 10 * tolerance


def _plain_fit(target: ChunkPrediction, source: ChunkPrediction) -> Sim3:
    pts_t = unproject_depth_map_to_point_map(target.depth, target.extrinsic, target.intrinsic).reshape(-1, 3)
    pts_s = unproject_depth_map_to_point_map(source.depth, source.extrinsic, source.intrinsic).reshape(-1, 3)
    valid = (target.depth.reshape(-1) > 0) & (source.depth.reshape(-1) > 0)
    return weighted_umeyama(pts_s[valid], pts_t[valid], np.ones(int(valid.sum())))


def test_bad_cameras_are_corrected_by_the_points() -> None:
    """The start from the cameras may be off (one camera badly predicted); the points decide."""
    source = _prediction([2, 3, 4])
    target = _moved(source, TRUE)
    target.extrinsic[1, :, 3] += 0.5 * np.linalg.norm(target.extrinsic[1, :, 3])  # moves only the start
    target.depth[1] = 0.0  # that frame's pixels carry no pairs
    assert max(_error(estimate_sim3(target, source).target_from_source, TRUE)) < 1e-5


def test_alignment_needs_the_same_frames() -> None:
    with pytest.raises(ValueError, match="same frames"):
        estimate_sim3(_prediction([2, 3]), _prediction([3, 4]))
