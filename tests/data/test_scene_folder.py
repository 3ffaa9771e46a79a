"""Scene folders (cameras.json or COLMAP) read into the same sample dict as the synthetic scenes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vggtkit.data.colmap_reader import read_colmap_model
from vggtkit.data.scene_folder import SceneFolderCollection, load_scene_folder, save_scene_folder
from vggtkit.data.synthetic import SyntheticSceneConfig, render_scene

CFG = SyntheticSceneConfig(
    num_frames=2, image_size=(28, 42), supersample=1, num_tracks=0, photo_probability=0.0
)


@pytest.fixture(scope="module")
def sample():
    return render_scene(CFG, seed=3)


def test_round_trip_through_a_scene_folder(tmp_path, sample):
    folder = save_scene_folder(sample, tmp_path / "scene")
    loaded = load_scene_folder(folder)
    assert loaded["has_depth"] and loaded["seq_name"] == "scene"
    torch.testing.assert_close(loaded["images"], sample["images"], atol=1 / 255, rtol=0)
    torch.testing.assert_close(loaded["depths"], sample["depths"], atol=1e-3, rtol=0)  # millimetre PNG
    torch.testing.assert_close(loaded["extrinsics"], sample["extrinsics"])
    torch.testing.assert_close(loaded["intrinsics"], sample["intrinsics"])
    torch.testing.assert_close(loaded["world_points"], sample["world_points"], atol=5e-3, rtol=0)
    assert not list(folder.rglob(".*tmp"))  # no temporary files left behind


def test_resizing_updates_intrinsics_and_depth(tmp_path, sample):
    folder = save_scene_folder(sample, tmp_path / "scene", depth_format="npy")
    loaded = load_scene_folder(folder, image_size=(14, 28))
    assert loaded["images"].shape == (2, 3, 14, 28) and loaded["depths"].shape == (2, 14, 28)
    # a 42x28 image cropped to 2:1 (42x21) around the principal point, then halved in size
    assert float(loaded["intrinsics"][0, 0, 0]) == pytest.approx(
        float(sample["intrinsics"][0, 0, 0]) * 28 / 42, rel=1e-5
    )
    by_width = load_scene_folder(folder, image_size=28)
    assert by_width["images"].shape[-2:] == (14, 28)  # height from the aspect ratio, a multiple of 14


def test_bad_folders_name_the_problem(tmp_path, sample):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_scene_folder(tmp_path / "absent")
    (tmp_path / "empty" / "images").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="cameras.json"):
        load_scene_folder(tmp_path / "empty")
    folder = save_scene_folder(sample, tmp_path / "scene")
    data = json.loads((folder / "cameras.json").read_text())
    data["frames"][1]["K"] = [[0, 0, 1], [0, 1, 1], [0, 0, 1]]
    (folder / "cameras.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="positive focal"):
        load_scene_folder(folder)
    data["frames"][1]["image"] = "missing.png"
    data["frames"][1]["K"] = data["frames"][0]["K"]
    (folder / "cameras.json").write_text(json.dumps(data))
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_scene_folder(folder)
    with pytest.raises(FileNotFoundError, match="no scene folders"):
        SceneFolderCollection(tmp_path / "empty" / "images")


def test_colmap_model_is_read_with_the_pixel_centre_shift(tmp_path, sample):
    pycolmap = pytest.importorskip("pycolmap")
    folder = save_scene_folder(sample, tmp_path / "scene")
    (folder / "cameras.json").unlink()
    rec = pycolmap.Reconstruction()
    height, width = CFG.image_size
    for i in range(2):
        K = sample["intrinsics"][i].double().numpy()
        camera = pycolmap.Camera(
            model="PINHOLE", width=width, height=height,
            params=[K[0, 0], K[1, 1], K[0, 2] + 0.5, K[1, 2] + 0.5], camera_id=i + 1,
        )  # fmt: skip
        rec.add_camera_with_trivial_rig(camera)
        image = pycolmap.Image(
            name=f"{i:03d}.png", points2D=pycolmap.Point2DList(), camera_id=i + 1, image_id=i + 1
        )
        pose = sample["extrinsics"][i].double().numpy()
        rec.add_image_with_trivial_frame(
            image, pycolmap.Rigid3d(pycolmap.Rotation3d(pose[:, :3]), pose[:, 3])
        )
    (folder / "sparse" / "0").mkdir(parents=True)
    rec.write_text(str(folder / "sparse" / "0"))
    views = read_colmap_model(folder / "sparse" / "0")
    assert [v.name for v in views] == ["000.png", "001.png"]
    np.testing.assert_allclose(views[1].K, sample["intrinsics"][1].numpy(), atol=1e-4)
    np.testing.assert_allclose(views[1].cam_from_world, sample["extrinsics"][1].numpy(), atol=1e-5)
    loaded = load_scene_folder(folder)
    torch.testing.assert_close(loaded["extrinsics"], sample["extrinsics"], atol=1e-5, rtol=0)
    with pytest.raises(FileNotFoundError, match="no COLMAP model"):
        read_colmap_model(tmp_path)
