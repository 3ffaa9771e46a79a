"""`vggtkit reconstruct --ba`: the model's predictions.npz, the refined predictions_refined.npz and refine.json,
every other export from the refined cameras (read back by the tools meant for them), and a run that never
fails because refinement cannot happen."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pycolmap
import pytest
import trimesh
from PIL import Image

from vggtkit.cli import main
from vggtkit.data.synthetic import SyntheticSceneConfig, render_scene
from vggtkit.reconstruction import Reconstruction


@pytest.fixture(scope="module")
def views(tmp_path_factory) -> Path:
    """Five 224-px views of a synthetic scene outside the held-out set, as PNG files."""
    sample = render_scene(SyntheticSceneConfig(num_frames=5, image_size=(224, 224), num_tracks=0), 101)
    folder = tmp_path_factory.mktemp("views")
    for i, image in enumerate(sample["images"].numpy()):
        rgb = np.clip(np.rint(image.transpose(1, 2, 0) * 255), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(folder / f"view_{i}.png")
    return folder


@pytest.fixture(scope="module")
def refined_scene(views: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ba")
    argv = ["reconstruct", str(views), "-o", str(out), "--checkpoint", "tiny-synthetic", "--ba"]
    argv += ["--export", "all", "--conf-threshold", "0", "--distance", "view_0.png", "view_4.png", "2.0"]
    code = main(argv)
    assert code == 0
    return out


def _centres(extrinsic: np.ndarray) -> np.ndarray:
    return -np.einsum("sji,sj->si", extrinsic[:, :, :3], extrinsic[:, :, 3])


def test_ba_writes_refined_exports(refined_scene) -> None:
    out = refined_scene
    report = json.loads((out / "refine.json").read_text())
    assert report["status"] in ("refined", "partial") and report["num_tracks"] > 50
    predicted = Reconstruction.load_npz(out / "predictions.npz")
    refined = Reconstruction.load_npz(out / "predictions_refined.npz")
    assert not np.allclose(predicted.extrinsic, refined.extrinsic, atol=1e-3)
    # aligned: the known distance holds in every export
    assert np.linalg.norm(_centres(refined.extrinsic)[0] - _centres(refined.extrinsic)[4]) == pytest.approx(
        2.0
    )
    cameras = json.loads((out / "cameras.json").read_text())["frames"]
    for i, frame in enumerate(cameras):
        np.testing.assert_allclose(np.asarray(frame["cam_from_world"])[:3], refined.extrinsic[i], atol=1e-5)
    model = pycolmap.Reconstruction(str(out / "sparse" / "0"))
    assert model.num_points3D() == report["num_tracks"] > 0
    assert model.compute_mean_track_length() == pytest.approx(report["mean_track_length"], abs=1e-3)
    image = model.image(2)
    np.testing.assert_allclose(image.cam_from_world().matrix(), refined.extrinsic[1], atol=1e-5)
    assert (
        model.compute_mean_reprojection_error() < 2.0
    )  # observations are matched keypoints, not reprojections


def test_ba_point_exports_use_the_refined_depth(refined_scene) -> None:
    out = refined_scene
    refined = Reconstruction.load_npz(out / "predictions_refined.npz")
    ply = trimesh.load(out / "points.ply")
    points = refined.world_points_from_depth.reshape(-1, 3)
    # every exported point is one of the refined depth branch's points (conf threshold 0 keeps them all)
    assert len(ply.vertices) > 0
    lo, hi = points.min(axis=0) - 1e-4, points.max(axis=0) + 1e-4
    assert np.all((ply.vertices >= lo) & (ply.vertices <= hi))
    assert len(trimesh.load(out / "scene.glb").geometry) > 0
    transforms = json.loads((out / "transforms.json").read_text())
    assert len(transforms["frames"]) == 5
    scale = json.loads((out / "depth" / "depth.json").read_text())["depth_scale"]
    stored = np.asarray(Image.open(out / "depth" / "view_3.png"), dtype=np.float64) / scale
    expected = refined.depth[3, ..., 0]
    assert stored.shape == expected.shape
    np.testing.assert_allclose(stored, expected, atol=1.0 / scale)


def test_ba_with_nothing_to_match_keeps_the_model_result(photos: Path, tmp_path: Path, capsys) -> None:
    """Three unrelated noise textures: nothing matches, the run succeeds with the model's cameras."""
    out = tmp_path / "out"
    code = main(["reconstruct", str(photos), "-o", str(out), "--checkpoint", "tiny-synthetic", "--ba"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "refinement: feed-forward" in captured.out and "keeping the feed-forward cameras" in captured.err
    report = json.loads((out / "refine.json").read_text())
    assert report["status"] == "feed-forward" and report["warnings"]
    assert not (out / "predictions_refined.npz").exists()
    predicted = Reconstruction.load_npz(out / "predictions.npz")
    model = pycolmap.Reconstruction(str(out / "sparse" / "0"))
    np.testing.assert_allclose(model.image(1).cam_from_world().matrix(), predicted.extrinsic[0], atol=1e-5)


def _error(capsys, argv: list[str]) -> str:
    code = main(argv)
    _, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err and len(lines) == 1, (code, err)
    assert lines[0].startswith("vggtkit reconstruct: error: ")
    return lines[0]


def test_ba_user_mistakes(views: Path, tmp_path: Path, capsys) -> None:
    base = ["reconstruct", str(views), "-o", str(tmp_path / "o"), "--checkpoint", "tiny-synthetic"]
    assert "--focal is a refinement option; add --ba" in _error(capsys, [*base, "--focal", "300"])
    assert "SIMPLE_RADIAL needs --ba" in _error(capsys, [*base, "--camera-model", "SIMPLE_RADIAL"])
    assert "--iterations must be an integer >= 1" in _error(capsys, [*base, "--ba", "--iterations", "0"])
    assert "--max-keypoints must be" in _error(capsys, [*base, "--ba", "--max-keypoints", "3"])
    assert "intrinsics file not found" in _error(
        capsys, [*base, "--ba", "--intrinsics", str(tmp_path / "k.json")]
    )
    (tmp_path / "k.json").write_text("{not json")
    assert "k.json" in _error(capsys, [*base, "--ba", "--intrinsics", str(tmp_path / "k.json")])
    (tmp_path / "gps.txt").write_text("view_0.png 0 0\n")
    assert "expected 'IMAGE_NAME X Y Z'" in _error(
        capsys, [*base, "--ba", "--align-to", str(tmp_path / "gps.txt")]
    )
    (tmp_path / "gps.txt").write_text("a.png 0 0 0\nb.png 1 0 0\nc.png 0 1 0\n")
    message = _error(capsys, [*base, "--ba", "--align-to", str(tmp_path / "gps.txt"), "--export", "npz"])
    assert "at least 3 cameras" in message and "unknown: a.png" in message
    assert "--align-max-error must be > 0" in _error(
        capsys, [*base, "--ba", "--align-to", str(tmp_path / "gps.txt"), "--align-max-error", "-1"]
    )
    assert not (tmp_path / "o" / "refine.json").exists()
