"""reconstruct(): preprocessing geometry, intrinsics at the original size, reference frame, npz, errors.

The golden tiny model (official-format random weights) runs at a 56-pixel resolution to stay fast.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vggtkit import VGGT, Reconstruction, reconstruct, tiny_config
from vggtkit.pipeline import OFFICIAL_KEYS, FrameSampling, InsufficientMemoryError, ReconstructOptions

RES = 56
pytestmark = pytest.mark.usefixtures(
    "one_thread"
)  # tiny models: one thread is far faster on a busy 2-core machine


def _marker_image(path: Path, w: int, h: int, x: int, y: int) -> Path:
    """A dark image with a red 3x3 marker centred on original pixel (x, y); other pixels vary smoothly."""
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([20 + 30 * xx / w, 20 + 30 * yy / h, np.full_like(xx, 30.0)], axis=-1)
    rgb[y - 1 : y + 2, x - 1 : x + 2] = (255, 0, 0)
    Image.fromarray(rgb.astype(np.uint8)).save(path)
    return path


def _marker_in_model(rec: Reconstruction, frame: int) -> np.ndarray:
    """Model pixel (x, y) of the marker: the red-weighted centroid of the red pixels (white padding is not red)."""
    red = rec.images[frame, 0] - rec.images[frame, 1]
    ys, xs = np.nonzero(red > 0.5 * red.max())
    weights = red[ys, xs]
    return np.array([np.average(xs, weights=weights), np.average(ys, weights=weights)])


@pytest.fixture(scope="module")
def marker_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("markers")
    _marker_image(folder / "a_landscape.png", 160, 120, 40, 90)
    _marker_image(folder / "b_portrait.png", 90, 180, 60, 100)  # crop mode cuts its top and bottom rows
    _marker_image(folder / "c_wide.png", 200, 80, 150, 30)
    return folder


@pytest.mark.parametrize("mode", ["crop", "pad"])
def test_original_from_model_follows_the_image_content(golden_vggt, marker_dir: Path, mode: str) -> None:
    rec = reconstruct(marker_dir, golden_vggt, device="cpu", mode=mode, resolution=RES)
    assert rec.names == ["a_landscape.png", "b_portrait.png", "c_wide.png"]
    np.testing.assert_array_equal(rec.original_hw, [[120, 160], [180, 90], [80, 200]])
    truth = np.array([[40, 90], [60, 100], [150, 30]], dtype=float)
    for i in range(3):
        found = rec.to_original_pixels(i, _marker_in_model(rec, i)[None])[0]
        scale = rec.original_from_model[i, 0, 0]  # original pixels per model pixel
        assert np.abs(found - truth[i]).max() < 0.6 * scale, (mode, i, found, truth[i])
    # Intrinsics at the original size are the model's mapped through the same transform.
    np.testing.assert_allclose(rec.intrinsic_original, rec.original_from_model @ rec.intrinsic)
    # Padding is excluded: the content mask covers exactly the resized image.
    content = rec.content_mask()
    if mode == "pad":
        assert content[2].sum() == 56 * 28  # 200x80 -> 56x22.4 -> rounded to 28 rows (2 patches)
    else:
        assert content[1].all()  # the portrait image fills the frame (rows cropped)
        assert content[0].sum() == 56 * 42
        # Portrait 90x180 in crop mode: resized to 56x112, rows 28..83 kept. Pixel edges scale, so a model
        # pixel centre u maps to (u + 0.5) * 90 / 56 - 0.5 and v to (v + 28 + 0.5) * 180 / 112 - 0.5.
        K, K0 = rec.intrinsic[1], rec.intrinsic_original[1]
        sx, sy = 90 / 56, 180 / 112
        np.testing.assert_allclose(
            [K0[0, 0], K0[1, 1], K0[0, 2], K0[1, 2]],
            [K[0, 0] * sx, K[1, 1] * sy, (K[0, 2] + 0.5) * sx - 0.5, (K[1, 2] + 28 + 0.5) * sy - 0.5],
        )


def test_reference_frame_and_tensor_input(golden_vggt, marker_dir: Path) -> None:
    rec = reconstruct(marker_dir, golden_vggt, device="cpu", resolution=RES, reference=1)
    assert rec.reference_index == 1 and rec.names[1] == "b_portrait.png"
    # Same as passing the frames in the order [1, 0, 2] (frame 1 first), outputs back in sorted order.
    permuted = reconstruct(torch.from_numpy(rec.images[[1, 0, 2]]), golden_vggt, device="cpu", resolution=RES)
    np.testing.assert_allclose(permuted.depth, rec.depth[[1, 0, 2]], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(permuted.pose_enc, rec.pose_enc[[1, 0, 2]], rtol=1e-4, atol=1e-5)
    assert permuted.names == ["frame_000000.png", "frame_000001.png", "frame_000002.png"]
    np.testing.assert_allclose(
        permuted.intrinsic_original, permuted.intrinsic
    )  # a tensor is its own original


def test_outputs_and_npz_roundtrip(golden_vggt, marker_dir: Path, tmp_path: Path) -> None:
    stages: list[str] = []
    rec = reconstruct(
        marker_dir,
        golden_vggt,
        device="cpu",
        resolution=RES,
        progress=lambda stage, done, total: stages.append(stage),
    )
    assert {"load images", "load model", "inference", "postprocess"} <= set(stages)
    s, (h, w) = 3, rec.model_hw
    assert rec.depth.shape == (s, h, w, 1) and rec.world_points.shape == (s, h, w, 3)
    assert rec.images.shape == (s, 3, h, w) and rec.extrinsic.shape == (s, 3, 4)
    assert np.isfinite(rec.intrinsic).all() and (rec.intrinsic[:, [0, 1], [0, 1]] > 0).all()
    path = rec.save_npz(tmp_path / "predictions.npz")
    with np.load(path) as npz:
        assert set(OFFICIAL_KEYS) <= set(npz.files)
        assert npz["depth"].shape == (s, h, w, 1) and npz["names"].dtype.kind == "U"
    loaded = Reconstruction.load_npz(path)
    for key in (*OFFICIAL_KEYS, "intrinsic_original", "original_from_model", "original_hw"):
        np.testing.assert_allclose(getattr(loaded, key), getattr(rec, key), rtol=1e-6, err_msg=key)
    assert loaded.names == rec.names and loaded.image_paths == rec.image_paths
    assert loaded.image_paths[0] == str((marker_dir / "a_landscape.png").resolve())


def test_official_npz_loads(golden_vggt, tmp_path: Path) -> None:
    """An npz written the way the official demo writes it (pose_enc_list as a pickled None) loads."""
    images = torch.rand(2, 3, 42, 56)
    rec = reconstruct(images, golden_vggt, device="cpu")
    arrays = {k: getattr(rec, k) for k in OFFICIAL_KEYS}
    np.savez(tmp_path / "official.npz", pose_enc_list=np.array(None, dtype=object), **arrays)
    loaded = Reconstruction.load_npz(tmp_path / "official.npz")
    assert loaded.names == ["frame_000000.png", "frame_000001.png"]
    np.testing.assert_array_equal(loaded.original_hw, [[42, 56], [42, 56]])
    np.testing.assert_allclose(loaded.depth, rec.depth)


def test_bfloat16_runs_close_to_float32(golden_vggt) -> None:
    images = torch.rand(2, 3, 42, 56, generator=torch.Generator().manual_seed(0))
    full = reconstruct(images, golden_vggt, device="cpu")
    half = reconstruct(images, golden_vggt, device="cpu", dtype="bfloat16")
    assert np.abs(half.depth - full.depth).max() < 0.1 * np.abs(full.depth).max()


def test_out_of_memory_becomes_a_clear_error(golden_vggt, monkeypatch) -> None:
    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr("vggtkit.pipeline.run._run_model", oom)
    # The advice names the library's options (the command line maps them to its flags).
    message = r"3 frames at 28x28 on cpu; try fewer frames \(max_frames=1\), dtype='bfloat16' or a smaller resolution \(resolution=14\)$"
    with pytest.raises(InsufficientMemoryError, match=message):
        reconstruct(torch.rand(3, 3, 28, 28), golden_vggt, device="cpu")


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ((10, 40), "smaller than one 14x14 patch"),
        ((2000, 14), r"too elongated: at 56 px .*use a larger resolution \(resolution=1008\)"),
    ],
)
def test_tiny_and_elongated_images(golden_vggt, tmp_path: Path, size, message: str) -> None:
    Image.new("RGB", size, (90, 90, 90)).save(tmp_path / "x.png")
    with pytest.raises(ValueError, match=message):
        reconstruct(tmp_path / "x.png", golden_vggt, device="cpu", resolution=RES)


def test_argument_errors(golden_vggt, tmp_path: Path) -> None:
    Image.new("RGB", (40, 30)).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match="reference frame 3 is out of range"):
        reconstruct(tmp_path, golden_vggt, device="cpu", resolution=RES, reference=3)
    with pytest.raises(ValueError, match="multiple of 14"):
        reconstruct(tmp_path, golden_vggt, device="cpu", resolution=50)
    with pytest.raises(ValueError, match="dtype"):
        reconstruct(tmp_path, golden_vggt, device="cpu", dtype="int8")
    with pytest.raises(ValueError, match="mode must be one of 'crop', 'pad', 'balanced', 'max_size'"):
        reconstruct(tmp_path, golden_vggt, mode="square")
    with pytest.raises(TypeError, match="unknown option.*resolutoin.*the options are device, dtype"):
        reconstruct(tmp_path, golden_vggt, resolutoin=RES)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reconstruct(torch.full((1, 3, 28, 28), 255.0), golden_vggt, device="cpu")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ValueError, match="cannot read .*bad.png"):
        reconstruct(tmp_path, golden_vggt, device="cpu", resolution=RES)


def test_degenerate_focal_is_repaired_with_a_warning(golden_vggt, caplog) -> None:
    """The golden random weights predict a field of view of 0 on one axis: no inf reaches the outputs."""
    with caplog.at_level(logging.WARNING, logger="vggtkit"):
        rec = reconstruct(torch.rand(2, 3, 42, 56), golden_vggt, device="cpu")
    assert np.isfinite(rec.intrinsic).all() and np.isfinite(rec.world_points_from_depth).all()
    assert any("degenerate field of view" in r.getMessage() for r in caplog.records)


def test_resolution_defaults_to_the_models_img_size(tmp_path: Path) -> None:
    """A model trained at 70 px runs at 70 px unless told otherwise; images keep their aspect ratio."""
    model = VGGT(tiny_config(img_size=70)).eval()
    Image.new("RGB", (160, 120), (90, 120, 150)).save(tmp_path / "a.png")
    assert reconstruct(tmp_path, model, device="cpu").model_hw == (56, 70)  # 120 * 70 / 160 = 52.5 -> 56
    assert reconstruct(tmp_path, model, device="cpu", resolution=28).model_hw == (28, 28)


def test_options_object_and_keywords_agree(golden_vggt, marker_dir: Path) -> None:
    options = ReconstructOptions(
        device="cpu", resolution=RES, reference=2, sampling=FrameSampling(max_frames=3)
    )
    from_options = reconstruct(marker_dir, golden_vggt, options)
    # Keywords override fields of the options object; the object itself is unchanged (frozen).
    from_keywords = reconstruct(marker_dir, golden_vggt, options, reference=2, dtype="float32")
    assert from_options.reference_index == from_keywords.reference_index == 2
    np.testing.assert_array_equal(from_options.depth, from_keywords.depth)
    assert reconstruct(marker_dir, golden_vggt, options, reference=0).reference_index == 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"resolution": 0}, "resolution must be a positive multiple of the model's patch size"),
        ({"resolution": True}, "resolution must be a positive multiple of the model's patch size"),
        ({"reference": -1}, "reference must be a frame index >= 0"),
        ({"mode": "fit"}, "mode must be one of 'crop', 'pad', 'balanced', 'max_size'"),
        ({"dtype": "float64"}, "dtype must be one of float32, bfloat16, float16"),
        ({"sampling": 2.0}, "sampling must be a FrameSampling"),
    ],
)
def test_options_validate_themselves(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ReconstructOptions(**fields)


def test_a_truncated_predictions_file_is_a_clear_error(tmp_path):
    import numpy as np

    from vggtkit.reconstruction import Reconstruction

    path = tmp_path / "predictions.npz"
    arrays = {k: np.zeros(s) for k, s in {"pose_enc": (1, 1, 9), "depth": (1, 4, 4, 1), "depth_conf": (1, 4, 4),
                                            "images": (1, 3, 4, 4), "extrinsic": (1, 3, 4), "intrinsic": (1, 3, 3)}.items()}  # fmt: skip
    np.savez_compressed(path, **arrays)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 30):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="damaged"):
            Reconstruction.load_npz(path)
