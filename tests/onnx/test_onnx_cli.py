"""`vggtkit export-onnx` and `vggtkit reconstruct --runtime onnx`: a run end to end, and every user mistake ends
with exit code 2 and one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vggtkit.cli import main


def _error_line(capsys, argv: list[str]) -> str:
    """Run the CLI; check exit code 2, no traceback and one error line (the last); return it."""
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith(f"vggtkit {argv[0]}: error: "), err
    assert sum(line.startswith("vggtkit ") for line in lines) == 1, err
    return lines[-1]


def _photos(folder: Path, size: tuple[int, int], count: int = 3) -> Path:
    """``count`` textured RGB photos of ``size`` (width, height)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i}.png")
    return folder


def test_reconstruct_runs_the_exported_model(golden_onnx, tmp_path, capsys):
    """140x100 photos become 98x70 frames at the graph's width (the default resolution of an ONNX model)."""
    photos = _photos(tmp_path / "photos", (140, 100))
    out = tmp_path / "scene"
    argv = ["reconstruct", str(photos), "-o", str(out), "--runtime", "onnx", "--checkpoint", str(golden_onnx)]
    assert main([*argv, "--export", "npz,ply", "--device", "cpu"]) == 0
    assert "reconstructed 3 frames at 98x70" in capsys.readouterr().out
    with np.load(out / "predictions.npz") as npz:
        assert npz["depth"].shape == (3, 70, 98, 1) and np.isfinite(npz["depth"]).all()
    assert (out / "points.ply").stat().st_size > 0


def test_reconstruct_mistakes_with_onnx(golden_onnx, tmp_path, capsys):
    square = _photos(tmp_path / "square", (112, 112), count=2)
    base = ["reconstruct", str(square), "-o", str(tmp_path / "out"), "--device", "cpu"]
    onnx = ["--runtime", "onnx", "--checkpoint", str(golden_onnx)]
    line = _error_line(capsys, [*base, *onnx])
    assert "takes 98x70 frames (width x height), got 98x98" in line and "--mode pad" in line
    line = _error_line(capsys, [*base, *onnx, "--dtype", "bfloat16"])
    assert "computes in float32" in line and "--dtype bfloat16 applies to --runtime torch" in line
    line = _error_line(capsys, [*base, "--checkpoint", str(golden_onnx)])
    assert "is an ONNX model; run it with --runtime onnx" in line
    line = _error_line(capsys, [*base, "--runtime", "onnx", "--checkpoint", "tiny-synthetic"])
    assert "ONNX model tiny-synthetic does not exist" in line
    line = _error_line(capsys, [*base, *onnx, "--max-memory", "4GB"])
    assert "--max-memory plans the PyTorch model's memory; with --runtime onnx give --chunk-size" in line


def test_reconstruct_in_chunks_with_onnx(golden_onnx, tmp_path, capsys):
    photos = _photos(tmp_path / "photos", (140, 100), count=5)
    argv = ["reconstruct", str(photos), "-o", str(tmp_path / "out"), "--runtime", "onnx"]
    argv += ["--checkpoint", str(golden_onnx), "--chunk-size", "3", "--overlap", "1", "--export", "npz"]
    assert main([*argv, "--device", "cpu"]) == 0
    assert "reconstructed 5 frames at 98x70" in capsys.readouterr().out


def test_vggt_omega_is_refused(tmp_path, capsys):
    from vggtkit import VGGTOmega
    from vggtkit.models.omega import omega_preset_config

    folder = VGGTOmega(omega_preset_config("tiny")).save_pretrained(tmp_path / "omega")
    argv = ["export-onnx", "--checkpoint", str(folder), "-o", str(tmp_path / "omega.onnx")]
    for extra in ([], ["--tracks"]):
        line = _error_line(capsys, [*argv, *extra])
        assert "supports the VGGT family; VGGT-Omega models are not exported" in line
    assert not (tmp_path / "omega.onnx").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "100x70"], r"100x70 \(width x height\) is not a multiple of the model's patch size 14"),
        (["--size", "large"], "image size must look like WIDTHxHEIGHT"),
        (["--tracks"], "tiny-synthetic has no track head; export it without --tracks"),
        (["-o", "model.txt"], r"must end in \.onnx"),
        (["--checkpoint", "no/such/checkpoint"], "no/such/checkpoint"),
    ],
)
def test_export_mistakes(tmp_path, capsys, args, message):
    import re

    argv = ["export-onnx", "--checkpoint", "tiny-synthetic", "-o", str(tmp_path / "m.onnx"), *args]
    if "-o" in args:
        argv = ["export-onnx", "--checkpoint", "tiny-synthetic", *args]
    assert re.search(message, _error_line(capsys, argv))
    assert not list(tmp_path.iterdir())
