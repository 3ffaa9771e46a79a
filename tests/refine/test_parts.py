"""The refinement's parts: cameras, tracks, matching, query frames, depth sampling, options."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vggtkit.refine import (
    AlignOptions,
    BundleOptions,
    Camera,
    KnownIntrinsics,
    MatchOptions,
    RefineOptions,
    Tracks,
    select_query_frames,
)
from vggtkit.refine.cameras import fundamental_from_poses, project, unproject
from vggtkit.refine.correspondences import query_pairs
from vggtkit.refine.depth import sample_depth
from vggtkit.refine.features import Features
from vggtkit.refine.matching import GuideView, guided_matches, mutual_ratio_matches, verify_fundamental
from vggtkit.refine.tracks import chain_matches

K = np.array([[300.0, 0, 159.5], [0, 310.0, 119.5], [0, 0, 1]])


def _pose(yaw_deg: float, centre) -> np.ndarray:
    a = np.radians(yaw_deg)
    rot = np.array([[np.cos(a), 0, -np.sin(a)], [0, 1, 0], [np.sin(a), 0, np.cos(a)]])
    return np.concatenate((rot, (-rot @ np.asarray(centre, float))[:, None]), axis=1)


def test_camera_conventions() -> None:
    camera = Camera.from_K(K, 320, 240, "PINHOLE")
    assert camera.params == (300.0, 310.0, 160.0, 120.0)  # COLMAP's pixel centres at 0.5
    np.testing.assert_allclose(camera.K(), K)
    simple = Camera.from_K(K, 320, 240, "SIMPLE_PINHOLE")
    assert simple.focal_length == 305.0 and simple.with_focal_length(200).params == (200.0, 160.0, 120.0)
    np.testing.assert_allclose(camera.scaled(640, 480).K()[:2, :2], 2 * K[:2, :2])
    with pytest.raises(ValueError, match="takes"):
        Camera("PINHOLE", 320, 240, (1.0, 2.0))
    with pytest.raises(ValueError, match="invalid camera"):
        Camera("NOT_A_MODEL", 320, 240, (1.0,))


@pytest.mark.parametrize("model", ["SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL"])
def test_project_unproject_round_trip(model: str) -> None:
    camera = Camera.from_K(K, 320, 240, model)
    if model == "SIMPLE_RADIAL":
        camera = Camera(model, 320, 240, (*camera.params[:3], 0.05))
    pose = _pose(10, [0.3, -0.1, -2.0])
    xy = np.array([[10.0, 20.0], [160.0, 120.0], [300.5, 220.25]])
    depth = np.array([1.0, 2.5, 4.0])
    uv, z = project(camera, pose, unproject(camera, pose, xy, depth))
    np.testing.assert_allclose(uv, xy, atol=1e-6)
    np.testing.assert_allclose(z, depth, atol=1e-9)
    behind = camera.project(np.array([[0.0, 0.0, -1.0]]))
    assert np.isnan(behind).all()


def test_fundamental_from_poses() -> None:
    a, b = _pose(0, [0, 0, 0]), _pose(15, [1.0, 0.2, 0.3])
    camera = Camera.from_K(K, 320, 240)
    points = np.random.default_rng(0).uniform([-1, -1, 3], [1, 1, 6], size=(20, 3))
    xa, _ = project(camera, a, points)
    xb, _ = project(camera, b, points)
    F = fundamental_from_poses(K, a, K, b)
    residual = np.einsum("ni,ij,nj->n", np.c_[xb, np.ones(20)], F, np.c_[xa, np.ones(20)])
    assert np.abs(residual).max() < 1e-9 * np.abs(F).max() * 1e6


def test_chain_matches_drops_disagreeing_observations() -> None:
    keypoints = [np.arange(8.0).reshape(4, 2) + 100 * f for f in range(3)]
    matches = {
        (0, 1): np.array([[0, 0], [1, 1], [2, 2]]),
        (1, 2): np.array([[0, 0], [1, 1]]),
        (0, 2): np.array([[0, 0], [1, 3]]),  # keypoint 1 of frame 0 reaches keypoints 1 and 3 of frame 2
    }
    tracks = chain_matches(keypoints, matches)
    assert len(tracks) == 3 and tracks.num_observations == 3 + 2 + 2
    assert sorted(tracks.lengths().tolist()) == [2, 2, 3]
    second = tracks.track[(tracks.frame == 0) & (tracks.xy[:, 0] == 2.0)][0]
    assert sorted(tracks.frame[tracks.track == second].tolist()) == [0, 1]  # frame 2 dropped from it
    np.testing.assert_array_equal(tracks.per_frame(3), [3, 3, 1])
    assert len(chain_matches(keypoints, {})) == 0


def test_tracks_select_and_concat() -> None:
    tracks = Tracks([0, 0, 1, 1, 1, 2], [0, 1, 0, 1, 2, 0], np.zeros((6, 2)))
    keep = np.array([True, False, True, True, False, True])
    assert tracks.select(keep).track.tolist() == [0, 0]  # tracks 0 and 2 fall below two observations
    np.testing.assert_array_equal(tracks.kept_track_ids(keep), [1])
    both = Tracks.concat([tracks, tracks])
    assert len(both) == 6 and both.track.max() == 5
    with pytest.raises(ValueError, match="one entry per observation"):
        Tracks([0, 1], [0], np.zeros((2, 2)))


def test_mutual_ratio_matches() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 128)).astype(np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    order = rng.permutation(50)
    b = a[order] + 0.01 * rng.normal(size=(50, 128)).astype(np.float32)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    matches = mutual_ratio_matches(a, b, ratio=0.8)
    assert len(matches) == 50
    np.testing.assert_array_equal(order[matches[:, 1]], matches[:, 0])
    twin = np.concatenate((b, b[np.argsort(order)[:1]]))  # a second copy of a[0] in b: ambiguous
    assert 0 not in mutual_ratio_matches(a, twin, 0.8)[:, 0]


def test_verify_fundamental_rejects_outliers() -> None:
    camera = Camera.from_K(K, 320, 240)
    rng = np.random.default_rng(1)
    points = rng.uniform([-1, -1, 3], [1, 1, 6], size=(80, 3))
    xa, _ = project(camera, _pose(0, [0, 0, 0]), points)
    xb, _ = project(camera, _pose(12, [0.8, 0.1, 0.2]), points)
    xb[:20] = rng.uniform([0, 0], [320, 240], size=(20, 2))
    inliers = verify_fundamental(xa, xb, threshold=1.0, seed=0)
    assert inliers[20:].all() and inliers[:20].sum() <= 2
    assert not verify_fundamental(xa[:5], xb[:5], 1.0, 0).any()


def test_guided_matches_follow_the_geometry() -> None:
    """Two identical descriptors (repeated texture) in image b: the geometry picks the right one."""
    camera = Camera.from_K(K, 320, 240)
    pose_a, pose_b = _pose(0, [0, 0, 0]), _pose(10, [0.6, 0, 0.1])
    points = np.random.default_rng(2).uniform([-1, -1, 3], [1, 1, 5], size=(30, 3))
    xa, za = project(camera, pose_a, points)
    xb, _ = project(camera, pose_b, points)
    desc = np.eye(128, dtype=np.float32)[:30]
    decoy = xb[:1] + [[0.0, 60.0]]  # same descriptor as point 0, far from its epipolar line
    view_a = GuideView(Features(xa, desc), camera, pose_a, za)
    view_b = GuideView(
        Features(np.concatenate((decoy, xb)), np.concatenate((desc[:1], desc))), camera, pose_b, za
    )
    matches = guided_matches(view_a, view_b, epipolar_px=2.0, depth_range=1.5, ratio=0.9)
    assert len(matches) == 30
    np.testing.assert_array_equal(matches[:, 1], matches[:, 0] + 1)  # never the decoy (index 0)
    assert len(mutual_ratio_matches(desc, view_b.features.descriptors, 0.9)) == 29  # unguided: ambiguous


def test_query_frames_cover_the_sequence() -> None:
    assert select_query_frames(6, None) == list(range(6))
    chosen = select_query_frames(50, None, reference=7)
    assert len(chosen) == 12 and 7 in chosen and chosen[0] <= 4 and chosen[-1] == 49
    assert max(np.diff(chosen)) <= 6
    assert select_query_frames(10, 3, reference=0) == [0, 4, 9] or select_query_frames(10, 3) == [0, 5, 9]
    assert query_pairs(4, [0]) == [(0, 1), (0, 2), (0, 3)]
    assert len(query_pairs(5, range(5))) == 10


def test_sample_depth(perturbed) -> None:
    xy = np.array([[10.0, 20.0], [10.5, 20.0], [-3.0, 5.0]])
    depth = sample_depth(perturbed, np.zeros(3, int), xy)
    d = perturbed.depth[0, ..., 0]
    assert depth[0] == pytest.approx(d[20, 10]) and depth[1] == pytest.approx(
        (d[20, 10] + d[20, 11]) / 2, rel=1e-5
    )
    assert np.isnan(depth[2])


def test_options_validate_themselves() -> None:
    assert RefineOptions().to_dict()["bundle"]["camera_model"] == "SIMPLE_PINHOLE"
    for bad, field in [
        (dict(ratio=1.5), "ratio"),
        (dict(query_frames=0), "query_frames"),
        (dict(guided_depth_range=1.0), "guided_depth_range"),
    ]:
        with pytest.raises(ValueError, match=field):
            MatchOptions(**bad)
    with pytest.raises(ValueError, match="filter_schedule"):
        BundleOptions(filter_schedule=(0.5,))
    with pytest.raises(ValueError, match="loss"):
        BundleOptions(loss="l2")
    with pytest.raises(ValueError, match="matching must be a MatchOptions"):
        RefineOptions(matching=BundleOptions())
    with pytest.raises(ValueError, match="intrinsics must be a KnownIntrinsics"):
        RefineOptions(intrinsics="k.json")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one of them"):
        AlignOptions()
    with pytest.raises(ValueError, match="positive number"):
        AlignOptions(distance=("a.png", "b.png", 0.0))
    with pytest.raises(ValueError, match="max_error applies to positions only"):
        AlignOptions(distance=("a.png", "b.png", 1.0), max_error=0.1)
    options = RefineOptions(
        intrinsics=KnownIntrinsics.from_focal(300), alignment=AlignOptions(distance=("a", "b", 2))
    )
    assert options.to_dict()["intrinsics"] == "focal 300 px" and options.to_dict()["alignment"] == "distance"
    json.dumps(options.to_dict())
