"""`vggtkit refine`: writes predictions_refined.npz, refine.json and the exports of the refined result; every
user mistake is exit code 2 and one line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vggtkit.cli import main
from vggtkit.reconstruction import Reconstruction


@pytest.fixture(scope="module")
def predictions(perturbed, tmp_path_factory) -> Path:
    """The perturbed scene saved as a run's output: original images on disk, predictions.npz."""
    folder = tmp_path_factory.mktemp("run")
    paths = []
    for name, rgb in zip(perturbed.names, perturbed.source_frames, strict=True):
        Image.fromarray(rgb).save(folder / name)
        paths.append(str(folder / name))
    rec = dataclasses.replace(perturbed, image_paths=paths, names=list(perturbed.names), source_frames=None)
    return rec.save_npz(folder / "predictions.npz")


def _error_line(capsys, argv: list[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) >= 1 and lines[-1].startswith("vggtkit refine: error: "), err
    assert sum(line.startswith("vggtkit ") for line in lines) == 1, err
    return lines[-1]


def test_refine_writes_everything(predictions: Path, truth, capsys) -> None:
    import pycolmap

    poses, _, _ = truth
    out = predictions.parent / "out"
    argv = ["refine", str(predictions), "-o", str(out), "--distance", "view_0.png", "view_4.png", "3.0"]
    assert main([*argv, "--export", "all"]) == 0
    printed = capsys.readouterr().out
    assert "refinement: refined" in printed and "aligned to distance" in printed
    report = json.loads((out / "refine.json").read_text())
    assert report["status"] == "refined" and report["alignment"]["kind"] == "distance"
    assert not (out / "predictions.npz").exists()  # the model's own predictions are not rewritten
    rec = Reconstruction.load_npz(out / "predictions_refined.npz")
    centres = -np.einsum("sji,sj->si", rec.extrinsic[:, :, :3], rec.extrinsic[:, :, 3])
    assert np.linalg.norm(centres[0] - centres[4]) == pytest.approx(3.0)
    from _refine_scenes import rotation_errors

    assert rotation_errors(rec.extrinsic, poses).mean() < 0.5
    model = pycolmap.Reconstruction(str(out / "sparse" / "0"))
    assert model.num_images() == 5 and model.num_points3D() == report["num_tracks"]
    assert all((out / "images" / name).is_file() for name in rec.names)
    # every export is written in the aligned frame, with the refined cameras
    cameras = json.loads((out / "cameras.json").read_text())
    np.testing.assert_allclose(
        np.asarray(cameras["frames"][4]["cam_from_world"])[:3], rec.extrinsic[4], atol=1e-5
    )


def test_default_output_is_next_to_the_input(predictions: Path, capsys) -> None:
    assert main(["refine", str(predictions), "--iterations", "1", "--no-guided"]) == 0
    assert (predictions.parent / "refine.json").is_file()
    assert (predictions.parent / "predictions_refined.npz").is_file()
    assert (predictions.parent / "sparse" / "0" / "points3D.bin").is_file()


def test_user_mistakes(predictions: Path, tmp_path: Path, capsys) -> None:
    base = ["refine", str(predictions), "-o", str(tmp_path / "o")]
    assert "not found" in _error_line(capsys, ["refine", str(tmp_path / "missing.npz")])
    (tmp_path / "bad.npz").write_text("nope")
    assert "not an npz file" in _error_line(capsys, ["refine", str(tmp_path / "bad.npz")])
    (tmp_path / "file").write_text("")
    assert "is a file" in _error_line(capsys, ["refine", str(predictions), "-o", str(tmp_path / "file")])
    assert "not both" in _error_line(capsys, [*base, "--focal", "200", "--intrinsics", "k.json"])
    assert "positive number of pixels" in _error_line(capsys, [*base, "--focal", "-1"])
    assert "intrinsics file not found" in _error_line(
        capsys, [*base, "--intrinsics", str(tmp_path / "k.json")]
    )
    (tmp_path / "k.json").write_text(
        json.dumps({"K": [[100, 0, 10], [0, 100, 10], [0, 0, 1]], "width": 60, "height": 20})
    )
    assert "another aspect ratio" in _error_line(capsys, [*base, "--intrinsics", str(tmp_path / "k.json")])
    assert "--max-reproj-error must be > 0" in _error_line(capsys, [*base, "--max-reproj-error", "0"])
    assert "--iterations must be an integer >= 1" in _error_line(capsys, [*base, "--iterations", "0"])
    assert "no image named 'x.png'" in _error_line(capsys, [*base, "--distance", "view_0.png", "x.png", "1"])
    assert "is not a number" in _error_line(capsys, [*base, "--distance", "view_0.png", "view_1.png", "far"])
    (tmp_path / "gps.txt").write_text("view_0.png 0 0 0\nview_1.png 1 0 0\n")
    assert "at least 3 cameras" in _error_line(capsys, [*base, "--align-to", str(tmp_path / "gps.txt")])
    assert "--align-max-error needs --align-to" in _error_line(capsys, [*base, "--align-max-error", "1"])
    assert "not both" in _error_line(
        capsys, [*base, "--align-to", str(tmp_path / "gps.txt"), "--distance", "a", "b", "1"]
    )
    assert "no track head" in _error_line(capsys, [*base, "--track-head", "tiny-synthetic"])
    assert not (tmp_path / "o" / "refine.json").exists()


def test_argparse_mistakes(predictions: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["refine", str(predictions), "--camera-model", "FISHEYE"])
    assert exit_info.value.code == 2
