"""COLMAP export: read back with pycolmap 4, intrinsics at the original size, multi-view tracks, bundle adjustment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pycolmap
import pytest

from vggtkit.export import ExportOptions, export_colmap
from vggtkit.export.colmap import camera_params
from vggtkit.export.tracks import DepthViews, build_tracks
from vggtkit.geometry import project_points

ALL = ExportOptions(conf_threshold=0)


def _mean_error(model: pycolmap.Reconstruction) -> float:
    model.update_point_3d_errors()
    return model.compute_mean_reprojection_error()


def test_model_loads_with_original_intrinsics_and_multiview_tracks(noisy_scene, tmp_path: Path) -> None:
    rec = noisy_scene
    result = export_colmap(rec, tmp_path, ExportOptions(conf_threshold=20))
    model_dir = tmp_path / "sparse" / "0"
    assert result.path == model_dir
    for ext in ("bin", "txt"):
        for name in ("cameras", "images", "points3D", "rigs", "frames"):
            assert (model_dir / f"{name}.{ext}").is_file()
    model = pycolmap.Reconstruction(str(model_dir))
    text_model = pycolmap.Reconstruction()
    text_model.read_text(str(model_dir))
    assert model.num_reg_images() == text_model.num_reg_images() == rec.num_frames
    assert model.num_points3D() == text_model.num_points3D() == result.points > 500

    for i in range(rec.num_frames):
        image = model.images[i + 1]
        assert image.name == rec.names[i] and (tmp_path / "images" / image.name).is_file()
        camera = model.cameras[image.camera_id]
        assert (camera.width, camera.height) == (224, 168)  # the original size, not the model's 56x42
        # The predicted intrinsics rescaled to the original size. Pixel edges scale: the model's principal
        # point cx (integer pixel centres, OpenCV) is at cx + 0.5 from the image edge, COLMAP's coordinate.
        K = rec.intrinsic[i]
        scale = 224 / 56
        expected = [K[0, 0] * scale, K[1, 1] * scale, (K[0, 2] + 0.5) * scale, (K[1, 2] + 0.5) * scale]
        np.testing.assert_allclose(camera.params, expected, rtol=1e-9)
        np.testing.assert_allclose(image.cam_from_world().matrix(), rec.extrinsic[i], atol=1e-9)

    # Every point is observed in at least two images, and observations are consistent with the cameras.
    lengths = [p.track.length() for p in model.points3D.values()]
    assert min(lengths) >= 2 and np.mean(lengths) > 2.5
    assert _mean_error(model) < 1.5  # original pixels (1 model pixel = 4 original pixels)
    point_id, point = next(iter(model.points3D.items()))
    for element in point.track.elements:
        image = model.images[element.image_id]
        xy = image.points2D[element.point2D_idx].xy
        assert image.points2D[element.point2D_idx].point3D_id == point_id
        projected = image.project_point(point.xyz)
        assert np.linalg.norm(projected - xy) < 4.0


def test_bundle_adjustment_runs_and_does_not_increase_error(noisy_scene, tmp_path: Path) -> None:
    export_colmap(noisy_scene, tmp_path, ExportOptions(conf_threshold=50, track_points_per_frame=400))
    model = pycolmap.Reconstruction(str(tmp_path / "sparse" / "0"))
    before = _mean_error(model)
    options = pycolmap.BundleAdjustmentOptions()
    options.print_summary = False
    options.refine_focal_length = False
    pycolmap.bundle_adjustment(model, options)
    after = _mean_error(model)
    assert before > 0 and after <= before + 1e-9
    assert model.num_reg_images() == noisy_scene.num_frames


def test_simple_pinhole_shared_camera(scene, tmp_path: Path) -> None:
    export_colmap(scene, tmp_path, ExportOptions(camera_model="SIMPLE_PINHOLE", shared_camera=True))
    model = pycolmap.Reconstruction(str(tmp_path / "sparse" / "0"))
    assert model.num_cameras() == 1
    camera = model.cameras[1]
    assert camera.model == pycolmap.CameraModelId.SIMPLE_PINHOLE
    np.testing.assert_allclose(camera.params, camera_params(scene.intrinsic_original[0], "SIMPLE_PINHOLE"))
    assert {img.camera_id for img in model.images.values()} == {1}


def test_shared_camera_needs_one_size(scene, tmp_path: Path) -> None:
    scene.original_hw[1] = (100, 120)
    scene.source_frames[1] = np.zeros((100, 120, 3), np.uint8)
    with pytest.raises(ValueError, match="one size"):
        export_colmap(scene, tmp_path, ExportOptions(shared_camera=True))


def test_without_original_images_cameras_match_model_resolution(make_scene, tmp_path: Path) -> None:
    rec = make_scene(with_sources=False)
    export_colmap(rec, tmp_path, ALL)
    model = pycolmap.Reconstruction(str(tmp_path / "sparse" / "0"))
    camera = model.cameras[1]
    assert (camera.width, camera.height) == (56, 42)
    np.testing.assert_allclose(camera.params, camera_params(rec.intrinsic[0], "PINHOLE"))
    assert _mean_error(model) < 0.5


def test_single_frame_gives_a_model_without_points(make_scene, tmp_path: Path, caplog) -> None:
    rec = make_scene(n_frames=1)
    assert export_colmap(rec, tmp_path, ALL).points == 0
    assert any("no point is observed" in r.getMessage() for r in caplog.records)
    model = pycolmap.Reconstruction(str(tmp_path / "sparse" / "0"))
    assert model.num_reg_images() == 1 and model.num_points3D() == 0


def test_tracks_reject_views_that_disagree(scene) -> None:
    mask = scene.content_mask()
    agreeing = build_tracks(
        DepthViews(
            scene.world_points_from_depth,
            scene.depth[..., 0],
            mask,
            scene.extrinsic,
            scene.intrinsic,
            scene.colors(),
        )
    )
    # Frame 0's depth (and points) 20 % too far: its geometry now disagrees with every other frame.
    depth = scene.depth[..., 0].copy()
    depth[0] *= 1.2
    points = scene.world_points_from_depth.astype(np.float64)
    centre = scene.world_from_cam()[0, :3, 3]
    points[0] = centre + (points[0] - centre) * 1.2
    disagreeing = build_tracks(
        DepthViews(points, depth, mask, scene.extrinsic, scene.intrinsic, scene.colors())
    )
    assert len(agreeing) > 1000 and len(disagreeing) > 500  # frames 1..3 still agree among themselves
    with_frame0 = np.isin(disagreeing.point, disagreeing.point[disagreeing.frame == 0])
    assert with_frame0.sum() == 0  # no track joins frame 0 with another frame
    assert np.isin(agreeing.point, agreeing.point[agreeing.frame == 0]).sum() > 1000
    # Observations sit on the projections of their 3-D points (sub-pixel, model pixels).
    xyz = agreeing.xyz[agreeing.point][:, None]
    uv, _ = project_points(xyz, scene.extrinsic[agreeing.frame], scene.intrinsic[agreeing.frame])
    assert np.abs(uv[:, 0] - agreeing.uv).max() < 0.75
    # No pixel is used twice.
    keys = agreeing.frame * 10**6 + agreeing.uv[:, 1] * 1000 + agreeing.uv[:, 0]
    assert len(np.unique(keys)) == len(keys)
