"""Alignment to known camera positions (robust Umeyama) or to a known distance between two cameras."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _refine_scenes import make_reconstruction
from scipy.spatial.transform import Rotation

from vggtkit.geometry import unproject_depth_map_to_point_map
from vggtkit.refine import Similarity, align, apply_similarity, load_positions
from vggtkit.refine.align import camera_centres

KNOWN = Similarity(
    3.7, Rotation.from_euler("xyz", [20, -35, 110], degrees=True).as_matrix(), np.array([5.0, -2, 40])
)


@pytest.fixture(scope="module")
def rec(scene, truth):
    poses, K, depth = truth
    return make_reconstruction(scene, poses, K, depth)


def _positions(rec) -> dict[str, np.ndarray]:
    return dict(zip(rec.names, KNOWN.apply(camera_centres(rec)), strict=True))


def test_recovers_a_known_similarity(rec) -> None:
    aligned, report = align(rec, positions=_positions(rec))
    assert report.kind == "positions" and sorted(report.inliers) == sorted(rec.names)
    assert report.similarity.scale == pytest.approx(KNOWN.scale, rel=1e-9)
    np.testing.assert_allclose(report.similarity.rotation, KNOWN.rotation, atol=1e-9)
    np.testing.assert_allclose(report.similarity.translation, KNOWN.translation, atol=1e-8)
    assert report.rms < 1e-8 and max(report.residuals.values()) < 1e-8
    # (the ground-truth rotations come from float32: orthonormal to about 1e-7)
    np.testing.assert_allclose(camera_centres(aligned), KNOWN.apply(camera_centres(rec)), atol=1e-4)


def test_outlier_position_is_ignored_and_reported(rec) -> None:
    positions = _positions(rec)
    positions["view_2.png"] = positions["view_2.png"] + np.array([0.0, 30.0, 0.0])
    positions["not_an_image.png"] = np.zeros(3)
    _, report = align(rec, positions=positions)
    assert "view_2.png" not in report.inliers and report.unmatched == ["not_an_image.png"]
    assert report.similarity.scale == pytest.approx(KNOWN.scale, rel=1e-6)
    assert report.residuals["view_2.png"] == pytest.approx(30.0, rel=1e-3) and report.rms < 1e-6


def test_aligned_reconstruction_is_consistent(rec) -> None:
    aligned = apply_similarity(rec, KNOWN)
    np.testing.assert_allclose(aligned.depth, rec.depth * KNOWN.scale, rtol=1e-6)
    points = unproject_depth_map_to_point_map(aligned.depth, aligned.extrinsic, aligned.intrinsic)
    np.testing.assert_allclose(aligned.world_points_from_depth, points, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(
        aligned.world_points_from_depth, KNOWN.apply(rec.world_points_from_depth), atol=1e-3
    )


def test_distance_sets_the_scale(rec) -> None:
    centres = camera_centres(rec)
    current = np.linalg.norm(centres[0] - centres[4])
    aligned, report = align(rec, distance=("view_0.png", "view_4.png", 12.5))
    assert report.kind == "distance" and report.similarity.scale == pytest.approx(12.5 / current)
    new = camera_centres(aligned)
    assert np.linalg.norm(new[0] - new[4]) == pytest.approx(12.5)


def test_result_points_move_too(refined) -> None:
    aligned, report = align(refined, distance=("view_0.png", "view_1.png", 2.0))
    np.testing.assert_allclose(aligned.points, refined.points * report.similarity.scale)
    assert aligned.report.alignment["kind"] == "distance" and refined.report.alignment is None


def test_positions_files(tmp_path) -> None:
    (tmp_path / "p.json").write_text(json.dumps({"a.jpg": [1, 2, 3], "b.jpg": [4, 5, 6]}))
    (tmp_path / "p.txt").write_text("# name x y z\na.jpg 1 2 3\n\nb.jpg 4 5 6\n")
    for name in ("p.json", "p.txt"):
        positions = load_positions(tmp_path / name)
        assert sorted(positions) == ["a.jpg", "b.jpg"] and positions["b.jpg"].tolist() == [4, 5, 6]
    (tmp_path / "bad.txt").write_text("a.jpg 1 2\n")
    with pytest.raises(ValueError, match="line 1: expected 'IMAGE_NAME X Y Z'"):
        load_positions(tmp_path / "bad.txt")
    (tmp_path / "bad.json").write_text('{"a.jpg": [1, "x", 3]}')
    with pytest.raises(ValueError, match="three finite numbers"):
        load_positions(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="not found"):
        load_positions(tmp_path / "missing.txt")


def test_mistakes(rec) -> None:
    with pytest.raises(ValueError, match="one of them"):
        align(rec)
    with pytest.raises(ValueError, match="at least 3 cameras"):
        align(rec, positions={"view_0.png": [0, 0, 0], "view_1.png": [1, 0, 0]})
    with pytest.raises(ValueError, match="no image named 'nope.png'"):
        align(rec, distance=("view_0.png", "nope.png", 1.0))
    with pytest.raises(ValueError, match="must be positive"):
        align(rec, distance=("view_0.png", "view_1.png", -1.0))
