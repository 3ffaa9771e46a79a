"""Exports of a synthetic scene with exact geometry, each read back by the tool it is meant for."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import trimesh

from vggtkit.export import (
    EXPORT_DESCRIPTIONS,
    EXPORTERS,
    ExportOptions,
    export_all,
    export_cameras_json,
    export_depth,
    export_glb,
    export_ply,
    export_transforms_json,
    parse_export_names,
)
from vggtkit.export.glb import scene_alignment
from vggtkit.export.points import select_points
from vggtkit.utils.atomic import atomic_dir, atomic_path

ALL = ExportOptions(conf_threshold=0)


def _glb_points(path: Path) -> np.ndarray:
    """The point cloud vertices of a GLB in scene coordinates (node transforms applied)."""
    scene = trimesh.load(path, file_type="glb")
    clouds = [g for g in scene.dump(concatenate=False) if isinstance(g, trimesh.PointCloud)]
    return np.concatenate([c.vertices for c in clouds]) if clouds else np.zeros((0, 3))


# ------------------------------------------------------------------------------------------- selection
def test_confidence_percentile_black_white_and_padding(scene) -> None:
    content = scene.content_mask()
    assert content.all()
    assert len(select_points(scene, ALL)) == content.sum()
    half = select_points(scene, ExportOptions(conf_threshold=50))
    assert abs(len(half) - content.sum() / 2) <= 2
    assert half.conf.min() >= np.percentile(scene.depth_conf, 50) - 1e-6

    scene.images[0, :, :5, :] = 0.0  # black rows
    scene.images[1, :, :, :4] = 1.0  # white columns
    pts = select_points(scene, ExportOptions(conf_threshold=0, mask_black=True, mask_white=True))
    assert not ((pts.frame == 0) & (pts.pixel[:, 1] < 5)).any()
    assert not ((pts.frame == 1) & (pts.pixel[:, 0] < 4)).any()
    assert len(pts) == content.sum() - 5 * 56 - 4 * 42

    # Padding (model pixels mapping outside the original image) never becomes a point, even with threshold 0.
    scene.original_from_model[2, 1, 2] -= 8 * scene.original_from_model[2, 1, 1]  # 8 rows of padding on top
    pts = select_points(scene, ALL)
    assert not ((pts.frame == 2) & (pts.pixel[:, 1] < 8)).any()
    assert ((pts.frame == 2) & (pts.pixel[:, 1] == 8)).any()


def test_frame_filter_and_branch(scene) -> None:
    pts = select_points(scene, ExportOptions(conf_threshold=0, frame=2))
    assert set(pts.frame.tolist()) == {2}
    scene.world_points[...] += 1.0
    moved = select_points(scene, ExportOptions(conf_threshold=0, frame=2, branch="pointmap"))
    np.testing.assert_allclose(moved.xyz, pts.xyz + 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        select_points(scene, ExportOptions(frame=9))


def test_options_validate() -> None:
    with pytest.raises(ValueError, match="percentile"):
        ExportOptions(conf_threshold=150)
    with pytest.raises(ValueError, match="camera_model"):
        ExportOptions(camera_model="OPENCV")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown export 'gltf'"):
        parse_export_names("glb,gltf")
    assert parse_export_names("all") == list(EXPORTERS)
    assert parse_export_names(" GLB , ply,glb") == ["glb", "ply"]


# ------------------------------------------------------------------------------------------- GLB
def test_glb_points_colours_cameras_and_alignment(scene, tmp_path: Path) -> None:
    result = export_glb(scene, tmp_path, ExportOptions(conf_threshold=30))
    assert result.path == tmp_path / "scene.glb"
    loaded = trimesh.load(result.path, file_type="glb")
    cloud = next(g for g in loaded.geometry.values() if isinstance(g, trimesh.PointCloud))
    cameras = [g for g in loaded.geometry.values() if isinstance(g, trimesh.Trimesh)]
    assert len(cameras) == scene.num_frames
    expected = select_points(scene, ExportOptions(conf_threshold=30))
    assert result.points == len(expected) == len(cloud.vertices)
    # Vertices are the world points under the scene alignment (reference camera, OpenGL axes).
    transform = scene_alignment(scene)
    aligned = expected.xyz @ transform[:3, :3].T + transform[:3, 3]
    np.testing.assert_allclose(_glb_points(result.path), aligned, atol=1e-5)
    # Every colour is an image colour (no black filler points).
    colours = np.asarray(cloud.colors)[:, :3]
    assert {tuple(c) for c in colours[:50]} <= {tuple(c) for c in expected.rgb}
    # Frusta are coloured by frame index: distinct colours.
    face_colours = {tuple(m.visual.face_colors[0][:3]) for m in cameras}
    assert len(face_colours) == scene.num_frames


def test_glb_frame_filter_and_no_cameras(scene, tmp_path: Path) -> None:
    export_glb(scene, tmp_path, ExportOptions(conf_threshold=0, frame=1))
    loaded = trimesh.load(tmp_path / "scene.glb", file_type="glb")
    assert len([g for g in loaded.geometry.values() if isinstance(g, trimesh.Trimesh)]) == 1
    assert len(_glb_points(tmp_path / "scene.glb")) == scene.content_mask()[1].sum()
    export_glb(scene, tmp_path, ExportOptions(show_cameras=False))
    loaded = trimesh.load(tmp_path / "scene.glb", file_type="glb")
    assert all(isinstance(g, trimesh.PointCloud) for g in loaded.geometry.values())


def test_glb_with_no_point_left_is_valid_and_warns(scene, tmp_path: Path, caplog) -> None:
    keep = np.zeros(scene.depth_conf.shape, dtype=bool)
    with caplog.at_level(logging.WARNING, logger="vggtkit"):
        result = export_glb(scene, tmp_path, ExportOptions(show_cameras=False), keep=keep)
    assert result.points == 0
    assert any("no point passes" in r.getMessage() for r in caplog.records)
    loaded = trimesh.load(result.path, file_type="glb")
    assert loaded.is_empty  # a valid, empty scene; not a fake point
    # With cameras shown, the cameras alone make the scene.
    export_glb(scene, tmp_path, ExportOptions(), keep=keep)
    assert len(_glb_points(tmp_path / "scene.glb")) == 0


# ------------------------------------------------------------------------------------------- PLY
def test_ply_roundtrip_and_voxel(scene, tmp_path: Path) -> None:
    result = export_ply(scene, tmp_path, ExportOptions(conf_threshold=20))
    cloud = trimesh.load(result.path)
    expected = select_points(scene, ExportOptions(conf_threshold=20))
    assert len(cloud.vertices) == len(expected) == result.points
    np.testing.assert_allclose(cloud.vertices, expected.xyz, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(cloud.colors)[:, :3], expected.rgb)
    raw = cloud.metadata["_ply_raw"]["vertex"]["data"]
    np.testing.assert_allclose(raw["confidence"], expected.conf)
    assert result.path.read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\n")

    voxel = export_ply(scene, tmp_path, ExportOptions(conf_threshold=20, voxel_size=0.1))
    down = trimesh.load(voxel.path)
    assert 0 < len(down.vertices) < len(expected) / 4
    assert (down.vertices.min(0) >= expected.xyz.min(0) - 1e-5).all()
    assert (down.vertices.max(0) <= expected.xyz.max(0) + 1e-5).all()


def test_empty_ply_is_valid(scene, tmp_path: Path) -> None:
    keep = np.zeros(scene.depth_conf.shape, dtype=bool)
    result = export_ply(scene, tmp_path, ALL, keep=keep)
    assert result.points == 0
    assert b"element vertex 0\n" in result.path.read_bytes()


# ------------------------------------------------------------------------------------------- cameras
def test_cameras_json(scene, tmp_path: Path) -> None:
    data = json.loads(export_cameras_json(scene, tmp_path).path.read_text())
    assert [f["name"] for f in data["frames"]] == scene.names
    frame = data["frames"][1]
    assert (frame["width"], frame["height"]) == (224, 168)
    np.testing.assert_allclose(frame["K"], scene.intrinsic_original[1])
    np.testing.assert_allclose(
        np.array(frame["world_from_cam"]) @ np.array(frame["cam_from_world"]), np.eye(4), atol=1e-9
    )
    np.testing.assert_allclose(np.array(frame["cam_from_world"])[:3], scene.extrinsic[1])


def test_transforms_json_for_nerfstudio(scene, tmp_path: Path) -> None:
    result = export_transforms_json(scene, tmp_path, ExportOptions(conf_threshold=10))
    data = json.loads(result.path.read_text())
    assert data["ply_file_path"] == "points.ply" and (tmp_path / "points.ply").is_file()
    assert len(data["frames"]) == scene.num_frames
    world_from_cam = scene.world_from_cam()
    for i, frame in enumerate(data["frames"]):
        image = cv2.imread(str(tmp_path / frame["file_path"]))
        assert image.shape[:2] == (frame["h"], frame["w"]) == (168, 224)
        K = scene.intrinsic_original[i]
        assert frame["fl_x"] == pytest.approx(K[0, 0]) and frame["fl_y"] == pytest.approx(K[1, 1])
        assert frame["cx"] == pytest.approx(K[0, 2] + 0.5) and frame["cy"] == pytest.approx(K[1, 2] + 0.5)
        c2w = np.array(frame["transform_matrix"])
        # OpenGL camera: columns 1 and 2 flipped relative to OpenCV; same camera centre.
        np.testing.assert_allclose(c2w[:3, 0], world_from_cam[i, :3, 0])
        np.testing.assert_allclose(c2w[:3, 1:3], -world_from_cam[i, :3, 1:3])
        np.testing.assert_allclose(c2w[:3, 3], world_from_cam[i, :3, 3])
    # A point seen by camera 0 lies in front of it in OpenGL convention (negative z in camera space).
    point = select_points(scene, ExportOptions(conf_threshold=10, frame=0)).xyz[0]
    cam = np.linalg.inv(np.array(data["frames"][0]["transform_matrix"])) @ np.append(point, 1.0)
    assert cam[2] < 0


# ------------------------------------------------------------------------------------------- depth
@pytest.mark.parametrize("resolution", ["model", "original"])
def test_depth_pngs(scene, tmp_path: Path, resolution: str) -> None:
    export_depth(scene, tmp_path, ExportOptions(depth_resolution=resolution))
    meta = json.loads((tmp_path / "depth" / "depth.json").read_text())
    frame = meta["frames"][1]
    depth_png = cv2.imread(str(tmp_path / "depth" / frame["depth"]), cv2.IMREAD_UNCHANGED)
    conf_png = cv2.imread(str(tmp_path / "depth" / frame["confidence"]), cv2.IMREAD_UNCHANGED)
    preview = cv2.imread(str(tmp_path / "depth" / frame["preview"]))
    assert depth_png.dtype == np.uint16 and conf_png.dtype == np.uint16
    expected_hw = (42, 56) if resolution == "model" else (168, 224)
    assert depth_png.shape == expected_hw == preview.shape[:2] == (frame["height"], frame["width"])
    depth = depth_png / meta["depth_scale"]
    truth = scene.depth[1, ..., 0]
    if resolution == "original":
        truth = truth.repeat(4, axis=0).repeat(4, axis=1)  # the original is the model image scaled by 4
    np.testing.assert_allclose(depth, truth, atol=1.0 / meta["depth_scale"])
    np.testing.assert_allclose(
        conf_png / meta["conf_scale"],
        (
            scene.depth_conf[1]
            .repeat(4 if resolution == "original" else 1, 0)
            .repeat(4 if resolution == "original" else 1, 1)
        ),
        atol=1e-3,
    )


# ------------------------------------------------------------------------------------------- sky
def test_sky_mask_with_injected_segmenter(scene, tmp_path: Path) -> None:
    from vggtkit.export.sky import sky_keep_masks

    def top_third_is_sky(rgb: np.ndarray) -> np.ndarray:
        sky = np.zeros(rgb.shape[:2], dtype=bool)
        sky[: rgb.shape[0] // 3] = True
        return sky

    keep = sky_keep_masks(scene, top_third_is_sky)
    assert keep.shape == scene.depth_conf.shape
    assert not keep[:, :14].any() and keep[:, 14:].all()  # 168 / 3 = 56 original rows = 14 model rows
    pts = select_points(scene, ALL, keep)
    assert pts.pixel[:, 1].min() == 14


def test_sky_model_errors(scene, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sky model not found"):
        export_all(scene, tmp_path, "glb", ExportOptions(sky_model=str(tmp_path / "missing.onnx")))


def _tiny_sky_onnx(path: Path) -> None:
    """An ONNX model whose output is its input's first channel (bright red = sky after normalisation)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, 32, 32])
    starts = helper.make_tensor("starts", TensorProto.INT64, [1], [0])
    ends = helper.make_tensor("ends", TensorProto.INT64, [1], [1])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    node = helper.make_node("Slice", ["input", "starts", "ends", "axes"], ["output"])
    graph = helper.make_graph([node], "first_channel", [inp], [out], initializer=[starts, ends, axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_sky_mask_with_onnx_model(scene, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    model = tmp_path / "sky.onnx"
    _tiny_sky_onnx(model)
    for i, frame in enumerate(scene.source_frames):
        frame[:] = (20, 20, 20)
        frame[:84, :, 0] = 255  # top half red
        scene.images[i] = frame[::4, ::4].transpose(2, 0, 1) / 255.0
    result = export_all(scene, tmp_path, "ply", ExportOptions(conf_threshold=0, sky_model=str(model)))["ply"]
    cloud = trimesh.load(result.path)
    assert result.points == scene.num_frames * 21 * 56  # the bottom half of every frame
    assert (np.asarray(cloud.colors)[:, 0] == 20).all()


# ------------------------------------------------------------------------------------------- atomic writes
def test_atomic_path_and_dir_leave_nothing_on_error(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "d") as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["old.txt"]
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["new.txt"]


def test_interrupted_glb_export_leaves_no_file(scene, tmp_path: Path, monkeypatch) -> None:
    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trimesh.Scene, "export", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_glb(scene, tmp_path, ALL)
    assert list(tmp_path.iterdir()) == []


def test_export_all_rejects_a_file_as_output(scene, tmp_path: Path) -> None:
    (tmp_path / "out").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        export_all(scene, tmp_path / "out", "glb")


def test_registry_writes_every_format_where_it_says(scene, tmp_path: Path) -> None:
    """export_all runs every registered exporter once; each writes its target; transforms reuses ply's file."""
    results = export_all(scene, tmp_path, "all", ExportOptions(conf_threshold=10))
    assert list(results) == list(EXPORTERS) == list(EXPORT_DESCRIPTIONS)
    for name, exporter in EXPORTERS.items():
        # The main file is the target itself, or inside it (colmap: sparse/0 in the output folder).
        assert results[name].path.is_relative_to(tmp_path / exporter.target), name
        assert results[name].path.exists(), name
    assert results["transforms"].points is None and results["ply"].points > 0  # points.ply written once
    assert json.loads((tmp_path / "transforms.json").read_text())["ply_file_path"] == "points.ply"
    # The names importable from vggtkit.export are the registry's exporters.
    assert export_glb is EXPORTERS["glb"] and export_transforms_json is EXPORTERS["transforms"]
