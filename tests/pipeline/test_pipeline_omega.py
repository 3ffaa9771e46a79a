"""VGGT-Omega through the pipeline: its own preprocessing, points from depth and cameras, every command.

A tiny VGGT-Omega (the golden fixture's architecture, fresh weights) trained "at" 64 px keeps the runs fast.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vggtkit import VGGTOmega, reconstruct
from vggtkit.app.engine import ModelRunner
from vggtkit.cli import main
from vggtkit.io import load_and_preprocess_omega_images
from vggtkit.models.omega.config import omega_preset_config
from vggtkit.pipeline import FrameSampling
from vggtkit.reconstruction import Reconstruction

pytestmark = pytest.mark.usefixtures("one_thread")
RES = 64


@pytest.fixture(scope="module")
def omega() -> VGGTOmega:
    torch.manual_seed(0)
    return VGGTOmega(omega_preset_config("tiny", image_resolution=RES, enable_alignment=False)).eval()


@pytest.fixture(scope="module")
def omega_dir(omega: VGGTOmega, tmp_path_factory) -> Path:
    return omega.save_pretrained(tmp_path_factory.mktemp("omega") / "tiny-omega")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Three 3:2 landscape photos and one portrait, smooth gradients with a few blocks."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(1)
    for i, (w, h) in enumerate([(96, 64), (96, 64), (96, 64), (60, 90)]):
        yy, xx = np.mgrid[0:h, 0:w]
        rgb = np.stack([xx * 255 / w, yy * 255 / h, np.full_like(xx, 60 + 40 * i)], axis=-1)
        for _ in range(4):
            x, y = rng.integers(0, w - 8), rng.integers(0, h - 8)
            rgb[y : y + 8, x : x + 8] = rng.integers(0, 255, 3)
        Image.fromarray(rgb.astype(np.uint8)).save(folder / f"img_{i}.png")
    return folder


def test_reconstruct_preprocesses_as_the_official_loader_and_runs_the_model_once(omega, photos) -> None:
    landscape = sorted(photos.glob("*.png"))[:3]
    rec = reconstruct(landscape, omega, device="cpu")
    assert rec.mode == "balanced" and rec.model_hw == (48, 80)  # about (64 / 16)^2 patches at 3:2: 5 x 3
    official = load_and_preprocess_omega_images(landscape, "balanced", RES, 16)
    np.testing.assert_array_equal(rec.images, official.numpy())
    with torch.inference_mode():
        out = omega(official)
    np.testing.assert_allclose(rec.depth, out["depth"][0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rec.pose_enc, out["pose_enc"][0].numpy(), rtol=1e-5, atol=1e-6)
    assert rec.world_points is None  # no point head: points come from depth and cameras
    assert np.isfinite(rec.world_points_from_depth).all()
    points, _ = rec.points("depth")
    assert points.shape == (3, 48, 80, 3)


def test_intrinsics_map_back_to_each_photos_own_size(omega, photos) -> None:
    """A portrait photo among landscapes is padded into the batch; its map undoes crop, resize and padding."""
    rec = reconstruct(photos, omega, device="cpu", mode="max_size")
    assert rec.mode == "max_size" and rec.num_frames == 4
    portrait = rec.names.index("img_3.png")
    h0, w0 = rec.original_hw[portrait]
    assert (h0, w0) == (90, 60)
    # The model pixel centre of the portrait's content maps to the photo's centre.
    centre = rec.original_from_model[portrait] @ np.array(
        [(rec.model_hw[1] - 1) / 2, (rec.model_hw[0] - 1) / 2, 1]
    )
    np.testing.assert_allclose(centre[:2], [(w0 - 1) / 2, (h0 - 1) / 2], atol=1e-6)


def test_a_checkpoint_folder_is_recognised_as_vggt_omega(omega_dir, photos) -> None:
    rec = reconstruct(photos, str(omega_dir), device="cpu", sampling=FrameSampling(max_frames=2))
    assert rec.mode == "balanced" and rec.model_hw[0] % 16 == 0 and rec.model_hw[1] % 16 == 0


def test_chunks_run_with_vggt_omega(omega, photos) -> None:
    rec = reconstruct(sorted(photos.glob("*.png"))[:3], omega, device="cpu", chunk_size=2, overlap=1)
    assert rec.num_frames == 3 and np.isfinite(rec.extrinsic).all()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"mode": "crop"},
            "mode='crop' is not a VGGT-Omega preprocessing mode; VGGT-Omega models take mode='balanced'",
        ),
        ({"resolution": 56}, "resolution must be a positive multiple of 16 for this model"),
    ],
)
def test_options_of_the_other_family_are_named(omega, photos, fields, message) -> None:
    with pytest.raises(ValueError, match=message):
        reconstruct(photos, omega, device="cpu", **fields)


def test_the_web_demo_runner_takes_vggt_omega(omega, photos) -> None:
    runner = ModelRunner(omega, device="cpu")
    assert runner.resolution == RES and runner.preprocessing.mode == "balanced"
    rec, report = runner.run(photos)
    assert rec.num_frames == 4 and report.model_hw == rec.model_hw and runner.model_runs == 1
    with pytest.raises(ValueError, match="multiple of 16"):
        ModelRunner(omega, device="cpu", resolution=70)


def test_the_command_line_reconstructs_and_exports_with_vggt_omega(
    omega_dir, photos, tmp_path, capsys
) -> None:
    out = tmp_path / "out"
    argv = ["reconstruct", str(photos), "--checkpoint", str(omega_dir), "-o", str(out), "--device", "cpu"]
    assert main([*argv, "--export", "npz,glb,ply,colmap,cameras"]) == 0
    written = {p.name for p in out.iterdir()}
    assert {"predictions.npz", "scene.glb", "points.ply", "cameras.json", "sparse"} <= written
    saved = Reconstruction.load_npz(out / "predictions.npz")
    assert saved.mode == "balanced" and saved.world_points is None
    assert main([*argv, "--mode", "pad"]) == 2
    assert (
        "--mode pad is not a VGGT-Omega preprocessing mode; VGGT-Omega models take --mode balanced or --mode max_size"
        in capsys.readouterr().err
    )


def test_the_evaluation_scores_a_vggt_omega_checkpoint(omega_dir, tmp_path, capsys) -> None:
    """Held-out synthetic scenes are 14-pixel sized; the model sees them on its 16-pixel grid."""
    report = tmp_path / "eval.json"
    code = main(
        ["evaluate", "--model", str(omega_dir), "--max-scenes", "1", "--baselines", "--json", str(report)]
    )
    assert code == 0
    import json

    results = json.loads(report.read_text())
    scores = results[str(omega_dir)]["summary"]
    assert scores["scenes"] == 1 and np.isfinite(scores["depth_abs_rel"]) and np.isfinite(scores["auc@30"])
