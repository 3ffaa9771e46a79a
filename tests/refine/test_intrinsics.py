"""Known intrinsics: read from JSON, COLMAP cameras.txt or a model folder, or a focal length; held fixed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vggtkit.refine import BundleOptions, Camera, KnownIntrinsics, RefineOptions, refine

HW = np.array([[224, 224]] * 3)
NAMES = ["a.png", "b.png", "c.png"]
K = [[200.0, 0.0, 111.5], [0.0, 210.0, 110.5], [0.0, 0.0, 1.0]]


def test_shared_json_with_rescaling(tmp_path) -> None:
    (tmp_path / "k.json").write_text(json.dumps({"K": K}))
    cameras = KnownIntrinsics.from_file(tmp_path / "k.json").resolve(NAMES, HW)
    assert all(c == cameras[0] for c in cameras)
    np.testing.assert_allclose(cameras[0].K(), K)
    # Calibrated at twice the size: rescaled to the images.
    big = np.array(K) * [[2, 1, 2], [1, 2, 2], [1, 1, 1]]
    big[:2, 2] = (np.array(K)[:2, 2] + 0.5) * 2 - 0.5
    (tmp_path / "big.json").write_text(json.dumps({"K": big.tolist(), "width": 448, "height": 448}))
    np.testing.assert_allclose(KnownIntrinsics.from_file(tmp_path / "big.json").resolve(NAMES, HW)[1].K(), K)


def test_per_image_json_is_vggtkit_cameras_json(tmp_path) -> None:
    frames = [{"name": "b.png", "K": K, "width": 224, "height": 224}, {"image": "sub/c.png", "K": K}]
    (tmp_path / "cameras.json").write_text(json.dumps({"frames": frames}))
    cameras = KnownIntrinsics.from_file(tmp_path / "cameras.json").resolve(NAMES, HW)
    assert cameras[0] is None and cameras[1] is not None and cameras[2] == cameras[1]


def test_colmap_files(tmp_path) -> None:
    (tmp_path / "cameras.txt").write_text("# comment\n1 SIMPLE_RADIAL 224 224 190 112 112 0.01\n")
    camera = KnownIntrinsics.from_file(tmp_path / "cameras.txt").resolve(NAMES, HW)[0]
    assert camera == Camera("SIMPLE_RADIAL", 224, 224, (190, 112, 112, 0.01))
    (tmp_path / "two.txt").write_text("1 PINHOLE 224 224 1 1 1 1\n2 PINHOLE 224 224 2 2 2 2\n")
    with pytest.raises(ValueError, match="holds 2 cameras"):
        KnownIntrinsics.from_file(tmp_path / "two.txt")
    import pycolmap

    model = pycolmap.Reconstruction()
    for i, (name, f) in enumerate(zip(NAMES[:2], (150.0, 160.0), strict=True), start=1):
        model.add_camera_with_trivial_rig(Camera("SIMPLE_PINHOLE", 224, 224, (f, 112, 112)).to_pycolmap(i))
        image = pycolmap.Image(name=name, points2D=pycolmap.Point2DList(), camera_id=i, image_id=i)
        model.add_image_with_trivial_frame(image, pycolmap.Rigid3d())
    (tmp_path / "model").mkdir()
    model.write_text(str(tmp_path / "model"))
    for source in (tmp_path / "model", tmp_path / "model" / "cameras.txt"):
        cameras = KnownIntrinsics.from_file(source).resolve(NAMES, HW)
        assert [c.focal_length if c else None for c in cameras] == [150.0, 160.0, None]


def test_focal() -> None:
    cameras = KnownIntrinsics.from_focal(300).resolve(NAMES, np.array([[224, 224], [100, 200], [224, 224]]))
    assert cameras[1] == Camera("SIMPLE_PINHOLE", 200, 100, (300, 100, 50))
    with pytest.raises(ValueError, match="positive number of pixels"):
        KnownIntrinsics.from_focal(-3)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read .* as JSON"),
        ('{"K": [[1, 0], [0, 1]]}', "3x3 matrix"),
        ('{"K": [[0, 0, 1], [0, 1, 1], [0, 0, 1]]}', "must be positive"),
        ('{"frames": [{"name": "a.png"}]}', "needs 'name' .* and 'K'"),
        ('{"cameras": []}', "must hold"),
        ('{"K": [[1, 0, 1], [0, 1, 1], [0, 0, 1]], "width": 10}', "both width and height"),
    ],
)
def test_json_mistakes(tmp_path, content: str, message: str) -> None:
    (tmp_path / "k.json").write_text(content)
    with pytest.raises(ValueError, match=message):
        KnownIntrinsics.from_file(tmp_path / "k.json")


def test_resolve_mistakes(tmp_path) -> None:
    (tmp_path / "k.json").write_text(json.dumps({"K": K, "width": 300, "height": 100}))
    with pytest.raises(ValueError, match="another aspect ratio"):
        KnownIntrinsics.from_file(tmp_path / "k.json").resolve(NAMES, HW)
    (tmp_path / "f.json").write_text(json.dumps({"frames": [{"name": "zzz.png", "K": K}]}))
    with pytest.raises(ValueError, match="none of the images is named"):
        KnownIntrinsics.from_file(tmp_path / "f.json").resolve(NAMES, HW)
    with pytest.raises(ValueError, match="not found"):
        KnownIntrinsics.from_file(tmp_path / "missing.json")
    (tmp_path / "k.yaml").write_text("")
    with pytest.raises(ValueError, match="must be a .json file"):
        KnownIntrinsics.from_file(tmp_path / "k.yaml")


def test_known_intrinsics_are_held(perturbed, truth, tmp_path) -> None:
    _, K_true, _ = truth
    frames = [{"name": n, "K": k.tolist()} for n, k in zip(perturbed.names, K_true, strict=True)]
    (tmp_path / "cameras.json").write_text(json.dumps({"frames": frames}))
    known = KnownIntrinsics.from_file(tmp_path / "cameras.json")
    result = refine(
        perturbed, RefineOptions(bundle=BundleOptions(camera_model="SIMPLE_RADIAL"), intrinsics=known)
    )
    assert result.report.status == "refined" and result.report.known_intrinsics == perturbed.names
    for i, camera in enumerate(result.cameras):
        assert camera.model == "PINHOLE"  # as given, not the refinement's SIMPLE_RADIAL
        np.testing.assert_allclose(camera.K(), K_true[i], atol=1e-9)
        np.testing.assert_allclose(result.reconstruction.intrinsic_original[i], K_true[i], atol=1e-9)
    assert all("focal_length" not in f.refined and "pose" in f.refined for f in result.report.frames[1:])
