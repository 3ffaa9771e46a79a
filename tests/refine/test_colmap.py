"""The refined result as a COLMAP model with real correspondences; COLMAP's own tools accept it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vggtkit.refine import to_pycolmap, write_colmap_model

pycolmap = pytest.importorskip("pycolmap")


@pytest.fixture(scope="module")
def model_dir(refined, tmp_path_factory) -> Path:
    return write_colmap_model(refined, tmp_path_factory.mktemp("colmap") / "sparse" / "0")


def test_read_back(refined, model_dir: Path) -> None:
    model = pycolmap.Reconstruction(str(model_dir))
    assert model.num_images() == 5 and model.num_points3D() == len(refined.tracks)
    assert model.compute_mean_track_length() == pytest.approx(refined.mean_track_length)
    assert sorted(im.name for im in model.images.values()) == sorted(refined.reconstruction.names)
    assert {c.model.name for c in model.cameras.values()} == {"SIMPLE_PINHOLE"}
    camera = model.camera(1)
    assert (camera.width, camera.height) == (224, 224)
    np.testing.assert_allclose(
        camera.calibration_matrix()[:2, 2] - 0.5, refined.reconstruction.intrinsic_original[0][:2, 2]
    )
    image = model.find_image_with_name("view_2.png")
    np.testing.assert_allclose(
        image.cam_from_world().matrix(), refined.reconstruction.extrinsic[2], atol=1e-9
    )
    # Observations are the matched keypoints (COLMAP pixel centres at 0.5), not reprojections.
    observed = np.array([p.xy for p in image.points2D]) - 0.5
    np.testing.assert_allclose(observed, refined.tracks.xy[refined.tracks.frame == 2])
    model.update_point_3d_errors()
    assert 0.01 < model.compute_mean_reprojection_error() < 1.0
    assert {f.name for f in model.images.values()} == {f.name for f in refined.report.frames}


def test_colmap_bundle_adjustment_changes_little(model_dir: Path) -> None:
    model = pycolmap.Reconstruction(str(model_dir))
    model.update_point_3d_errors()
    before = model.compute_mean_reprojection_error()
    options = pycolmap.BundleAdjustmentOptions()
    options.print_summary = False
    pycolmap.bundle_adjustment(model, options)
    model.update_point_3d_errors()
    after = model.compute_mean_reprojection_error()
    # Least squares (COLMAP's default loss) instead of the robust loss moves the mean error by hundredths.
    assert abs(after - before) < 0.05, (before, after)


def test_colmap_undistorter_accepts_it(refined, model_dir: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for name, rgb in zip(refined.reconstruction.names, refined.reconstruction.source_frames, strict=True):
        Image.fromarray(rgb).save(images / name)
    pycolmap.undistort_images(str(tmp_path / "dense"), str(model_dir), str(images))
    undistorted = pycolmap.Reconstruction(str(tmp_path / "dense" / "sparse"))
    assert undistorted.num_images() == 5
    assert len(list((tmp_path / "dense" / "images").iterdir())) == 5


def test_unrefined_frames_are_images_without_observations(refined) -> None:
    import dataclasses

    kept = dataclasses.replace(refined, tracks=refined.tracks.select(refined.tracks.frame != 4))
    ids = refined.tracks.kept_track_ids(refined.tracks.frame != 4)
    kept = dataclasses.replace(kept, points=refined.points[ids], colors=refined.colors[ids])
    model = to_pycolmap(kept)
    assert model.num_images() == 5 and model.image(5).num_points3D == 0
