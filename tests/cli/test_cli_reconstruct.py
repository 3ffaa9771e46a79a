"""`vggtkit reconstruct` / `export` / `info` end to end, each output read back by the tool it is meant for."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pycolmap
import pytest
import trimesh
from PIL import Image

from vggtkit.cli import main
from vggtkit.pipeline import Reconstruction

RES = "56"


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _expected_colmap_params(K: np.ndarray, w0: int, h0: int, batch_h: int) -> list[float]:
    """PINHOLE params of an image preprocessed in crop mode at 56 px, derived independently of vggtkit:
    resize to 56 x round(h0*56/w0/14)*14, crop rows to 56 (centre), pad rows to the batch height (centre)."""
    new_h = round(h0 * 56 / w0 / 14) * 14
    crop_top = (new_h - 56) // 2 if new_h > 56 else 0
    pad_top = (batch_h - min(new_h, 56)) // 2
    sx, sy = w0 / 56, h0 / new_h
    return [K[0, 0] * sx, K[1, 1] * sy, (K[0, 2] + 0.5) * sx, (K[1, 2] + 0.5 - pad_top + crop_top) * sy]


@pytest.fixture(scope="module")
def scene(photos: Path, checkpoint: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scene")
    code = main(
        [
            "reconstruct",
            str(photos),
            "-o",
            str(out),
            "--checkpoint",
            str(checkpoint),
            "--resolution",
            RES,
            "--export",
            "all",
            "--conf-threshold",
            "10",
        ]
    )
    assert code == 0
    return out


def test_reconstruct_writes_every_export(scene: Path) -> None:
    for name in (
        "predictions.npz",
        "scene.glb",
        "points.ply",
        "cameras.json",
        "transforms.json",
        "depth/depth.json",
        "sparse/0/cameras.bin",
        "sparse/0/points3D.txt",
        "images/img2.jpg",
    ):
        assert (scene / name).is_file(), name
    assert not list(scene.rglob(".*tmp*")), "temporary files left behind"
    rec = Reconstruction.load_npz(scene / "predictions.npz")
    assert rec.names == ["img1.png", "img2.jpg", "img10.png"]  # natural order
    np.testing.assert_array_equal(rec.original_hw, [[54, 96], [80, 60], [70, 70]])  # EXIF applied to img2

    glb = trimesh.load(scene / "scene.glb", file_type="glb")
    cloud = next(g for g in glb.geometry.values() if isinstance(g, trimesh.PointCloud))
    assert (
        len(cloud.vertices) > 1000 and sum(isinstance(g, trimesh.Trimesh) for g in glb.geometry.values()) == 3
    )
    ply = trimesh.load(scene / "points.ply")
    assert len(ply.vertices) == len(cloud.vertices)
    # The RGBA image's transparent corner was composited on white and is not masked by default; colours are real.
    assert np.asarray(ply.colors)[:, :3].sum(axis=1).min() > 0

    # EXIF-rotated JPEG: the copy in images/ is stored upright, so its size matches the camera's.
    assert Image.open(scene / "images" / "img2.jpg").size == (60, 80)
    transforms = json.loads((scene / "transforms.json").read_text())
    assert [(f["w"], f["h"]) for f in transforms["frames"]] == [(96, 54), (60, 80), (70, 70)]
    assert all((scene / f["file_path"]).is_file() for f in transforms["frames"])


def _check_colmap_cameras(scene: Path) -> pycolmap.Reconstruction:
    rec = Reconstruction.load_npz(scene / "predictions.npz")
    model = pycolmap.Reconstruction(str(scene / "sparse" / "0"))
    assert model.num_reg_images() == 3
    for i, (h0, w0) in enumerate(rec.original_hw):
        image = model.images[i + 1]
        camera = model.cameras[image.camera_id]
        assert image.name == rec.names[i]
        assert (camera.width, camera.height) == (w0, h0)
        expected = _expected_colmap_params(rec.intrinsic[i], int(w0), int(h0), rec.model_hw[0])
        np.testing.assert_allclose(camera.params, expected, rtol=1e-6)
        np.testing.assert_allclose(image.cam_from_world().matrix(), rec.extrinsic[i], atol=1e-6)
    return model


def test_colmap_cameras_at_original_size(scene: Path) -> None:
    _check_colmap_cameras(scene)


def test_colmap_tracks_reprojection_and_bundle_adjustment(
    photos, checkpoint, planar_model, tmp_path, capsys
) -> None:
    """With geometry that agrees across views (a planar scene), the model has multi-view points whose
    reprojections match their observations, and pycolmap's bundle adjustment accepts it."""
    code, stdout, _ = _run(
        capsys,
        "reconstruct",
        str(photos),
        "-o",
        str(tmp_path),
        "--checkpoint",
        str(checkpoint),
        "--resolution",
        RES,
        "--export",
        "npz,colmap",
        "--conf-threshold",
        "0",
    )
    assert code == 0
    model = _check_colmap_cameras(tmp_path)
    lengths = [point.track.length() for point in model.points3D.values()]
    assert len(lengths) > 500 and min(lengths) >= 2 and max(lengths) == 3
    assert f"colmap     sparse/0/, images/ ({len(lengths):,} points)" in stdout
    # Points3D project onto their observations with the exported cameras (original pixels; one model pixel
    # is up to 1.7 original pixels here, observations sit on model pixel centres).
    model.update_point_3d_errors()
    before = model.compute_mean_reprojection_error()
    assert before < 1.0
    for point in list(model.points3D.values())[:50]:
        for element in point.track.elements:
            image = model.images[element.image_id]
            residual = image.project_point(point.xyz) - image.points2D[element.point2D_idx].xy
            assert np.linalg.norm(residual) < 2.0
    options = pycolmap.BundleAdjustmentOptions()
    options.print_summary = False
    pycolmap.bundle_adjustment(model, options)
    model.update_point_3d_errors()
    assert model.compute_mean_reprojection_error() <= before + 1e-9


def test_video_then_reexport_from_npz(video: Path, checkpoint: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "clip"
    code, stdout, _ = _run(
        capsys,
        "reconstruct",
        str(video),
        "-o",
        str(out),
        "--checkpoint",
        str(checkpoint),
        "--resolution",
        RES,
        "--fps",
        "5",
        "--max-frames",
        "3",
        "--export",
        "npz,ply",
        "--conf-threshold",
        "10",
    )
    assert code == 0
    assert "reconstructed 3 frames at 56x42 (original 64x48)" in stdout and "peak process RSS" in stdout
    # 5 fps of a 10 fps video: frames 0, 2, ..., 18; three of them evenly spaced: 0, 8, 18.
    assert sorted(p.name for p in (out / "images").iterdir()) == [
        "clip_000000.png",
        "clip_000008.png",
        "clip_000018.png",
    ]
    points_10 = len(trimesh.load(out / "points.ply").vertices)
    code, stdout, _ = _run(
        capsys,
        "export",
        str(out / "predictions.npz"),
        "-o",
        str(tmp_path / "again"),
        "--export",
        "ply,colmap,cameras",
        "--conf-threshold",
        "80",
    )
    assert code == 0 and "exported 3 frames" in stdout
    points_80 = len(trimesh.load(tmp_path / "again" / "points.ply").vertices)
    assert 0 < points_80 < points_10
    assert abs(points_80 - 0.2 / 0.9 * points_10) < 0.05 * points_10
    model = pycolmap.Reconstruction(str(tmp_path / "again" / "sparse" / "0"))
    assert {(c.width, c.height) for c in model.cameras.values()} == {(64, 48)}
    assert Image.open(tmp_path / "again" / "images" / "clip_000008.png").size == (64, 48)


def test_resolution_defaults_to_the_checkpoints_training_size(photos: Path, tmp_path: Path, capsys) -> None:
    """The bundled tiny-synthetic model was trained at 112 px: without --resolution it runs at 112 px."""
    code, stdout, stderr = _run(
        capsys,
        "reconstruct",
        str(photos),
        "-o",
        str(tmp_path),
        "--checkpoint",
        "tiny-synthetic",
        "--export",
        "npz",
    )
    assert code == 0
    # 96x54 -> 112x56, 60x80 -> 112 wide (rows cropped to 112), 70x70 -> 112x112: padded to one 112x112 batch.
    assert "reconstructed 3 frames at 112x112" in stdout
    assert Reconstruction.load_npz(tmp_path / "predictions.npz").model_hw == (112, 112)
    # The library's advice in the warning about mixed shapes names the command-line flag.
    assert "--mode pad gives every image the same square" in stderr and "mode='pad'" not in stderr


def test_help_has_examples(capsys) -> None:
    for command in ("reconstruct", "export", "info"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        assert "examples:" in capsys.readouterr().out


def test_info_console_script() -> None:
    script = Path(sys.executable).parent / "vggtkit"
    result = subprocess.run(
        [str(script), "info"],
        capture_output=True,
        text=True,
        timeout=120,
        # The package under test: the one on PYTHONPATH when it is set (a source checkout), else the installed one.
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
    )
    assert result.returncode == 0, result.stderr
    assert "facebook/VGGT-1B" in result.stdout and "torch" in result.stdout and "cpu:" in result.stdout
    assert "not cached" in result.stdout or "cached at" in result.stdout


def test_info_lists_the_families_and_finds_a_cached_omega_checkpoint(tmp_path, monkeypatch, capsys) -> None:
    """A released VGGT-Omega file in the Hugging Face cache (its layout: refs/main -> snapshots/<rev>/file)."""
    from huggingface_hub import constants

    repo = tmp_path / "models--facebook--VGGT-Omega"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "vggt_omega_1b_512.pt").write_bytes(b"weights")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "VGGT-Omega (VGGTOmega):" in out and "VGGT (VGGT):" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip().startswith("facebook/")}
    assert "cached at" in lines["facebook/VGGT-Omega/vggt_omega_1b_512.pt"]
    assert (
        "hf download facebook/VGGT-Omega vggt_omega_1b_256_text.pt"
        in lines["facebook/VGGT-Omega/vggt_omega_1b_256_text.pt"]
    )
    assert "hf download facebook/VGGT-1B-Commercial" in lines["facebook/VGGT-1B-Commercial"]


def test_output_into_the_input_scene_never_touches_the_photos(photos, checkpoint, tmp_path, capsys) -> None:
    """`reconstruct scene -o scene` with photos in scene/images/ (the COLMAP layout) leaves them byte-identical."""
    import shutil

    shutil.copytree(photos, tmp_path / "images")
    before = {p.name: p.read_bytes() for p in (tmp_path / "images").iterdir()}
    code, _, _ = _run(
        capsys,
        "reconstruct",
        str(tmp_path),
        "-o",
        str(tmp_path),
        "--checkpoint",
        str(checkpoint),
        "--resolution",
        RES,
        "--export",
        "colmap,transforms",
    )
    assert code == 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "images").iterdir()} == before
    assert pycolmap.Reconstruction(str(tmp_path / "sparse" / "0")).num_reg_images() == 3


# ------------------------------------------------------------------------------------------- long sequences
def _video_args(video: Path, checkpoint: Path, out: Path, *extra: str) -> list[str]:
    return ["reconstruct", str(video), "-o", str(out), "--checkpoint", str(checkpoint), "--resolution", RES,
            "--fps", "10", *extra]  # fmt: skip


@pytest.mark.usefixtures("one_thread")
def test_video_in_chunks_writes_every_export(video, checkpoint, tmp_path, capsys, caplog) -> None:
    """20 frames in chunks of 8 (overlap 2), streamed from the video: one reconstruction, every export."""
    out = tmp_path / "scene"
    with caplog.at_level(logging.INFO, logger="vggtkit.pipeline"):
        code, stdout, _ = _run(
            capsys,
            *_video_args(video, checkpoint, out, "--chunk-size", "8", "--overlap", "2", "--export", "all"),
        )
    assert code == 0
    assert "running 3 chunks of 8 frames overlapping by 2 (20 frames)" in caplog.text
    assert "reconstructed 20 frames at 56x42 (original 64x48)" in stdout and ", alignment " in stdout
    rec = Reconstruction.load_npz(out / "predictions.npz")
    assert rec.num_frames == 20 and rec.names[-1] == "clip_000019.png"
    assert len(list((out / "images").iterdir())) == 20
    assert pycolmap.Reconstruction(str(out / "sparse" / "0")).num_reg_images() == 20
    assert len(json.loads((out / "transforms.json").read_text())["frames"]) == 20
    assert not [p for p in out.iterdir() if p.name.startswith("vggtkit-frames-")]  # the frame store is gone


@pytest.mark.usefixtures("one_thread")
def test_max_memory_chooses_one_pass_or_chunks(video, checkpoint, tmp_path, capsys, caplog) -> None:
    import torch

    from vggtkit import VGGT
    from vggtkit.pipeline.planning import PIPELINE_BYTES_PER_PIXEL, _estimate, default_overlap

    with caplog.at_level(logging.INFO, logger="vggtkit.pipeline.planning"):
        code, _, _ = _run(capsys, *_video_args(video, checkpoint, tmp_path / "a", "--max-memory", "100GB"))
    assert code == 0 and "one pass fits: 20 frames of 56x42 need about" in caplog.text
    caplog.clear()
    # A budget that chunks of 8 frames (with their overlap of 2) fit in, and 20 frames do not.
    model = VGGT.from_pretrained(checkpoint)
    budget = next(
        b
        for b in range(10**6, 10**9, 10**5)
        if _estimate(model, 8, (42, 56), torch.float32, b, 10 * 42 * 56 * PIPELINE_BYTES_PER_PIXEL)
    )
    assert default_overlap(8) == 2
    with caplog.at_level(logging.INFO, logger="vggtkit.pipeline.planning"):
        code, _, _ = _run(
            capsys, *_video_args(video, checkpoint, tmp_path / "b", "--max-memory", str(budget))
        )
    assert code == 0
    assert "one pass over 20 frames of 56x42 does not fit in --max-memory " in caplog.text
    assert "chunks of 8 frames overlapping by 2" in caplog.text
    assert Reconstruction.load_npz(tmp_path / "b" / "predictions.npz").num_frames == 20


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--overlap", "2"],
            "--overlap is only used with --chunk-size: give both, or --max-memory to choose them",
        ),
        (
            ["--chunk-size", "4", "--overlap", "4"],
            r"--overlap must be smaller than --chunk-size \(4\), got 4",
        ),
        (["--chunk-size", "1"], "--chunk-size must be a number of frames >= 2, got 1"),
        (["--max-memory", "lots"], "cannot read --max-memory 'lots': use bytes or a number with a unit"),
        (
            ["--max-memory", "1MB"],
            r"--max-memory 1.00 MB is too small even for chunks of 2 frames of 56x42; raise",
        ),
    ],
)
def test_long_sequence_mistakes(video, checkpoint, tmp_path, capsys, flags: list[str], message: str) -> None:
    code = main(_video_args(video, checkpoint, tmp_path, *flags))
    _, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err
    assert re.search(message, lines[-1]) and lines[-1].startswith("vggtkit reconstruct: error: "), lines[-1]


def test_work_dir_that_is_a_file(video, checkpoint, tmp_path, capsys) -> None:
    busy = tmp_path / "busy"
    busy.write_text("not a folder")
    code = main(
        _video_args(video, checkpoint, tmp_path / "out", "--chunk-size", "8", "--work-dir", str(busy))
    )
    _, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"vggtkit reconstruct: error: cannot keep frames in --work-dir {busy} (File exists); give a writable folder"
    )


def test_view_flag_opens_the_viewer_on_the_result(tmp_path, monkeypatch, capsys):
    import vggtkit.cli.view as view

    calls = []
    monkeypatch.setattr(
        view, "view_reconstruction", lambda rec, out, opts: calls.append((rec, out, opts)) or 0
    )
    image = tmp_path / "photos"
    image.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(image / f"{i}.png")
    code = main(["reconstruct", str(image), "-o", str(tmp_path / "out"), "--checkpoint", "tiny-synthetic",
                 "--device", "cpu", "--export", "npz", "--view"])  # fmt: skip
    assert code == 0 and len(calls) == 1
    rec, out, opts = calls[0]
    assert Path(out) == tmp_path / "out" and len(rec.names) == 2 and opts.conf_threshold is not None
