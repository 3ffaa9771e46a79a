"""Every user mistake ends with exit code 2 and one clear line on stderr (a traceback only with --debug)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vggtkit import VGGT, tiny_config
from vggtkit.cli import main
from vggtkit.cli.common import in_cli_terms

RES = ["--resolution", "56"]


def _error_line(capsys, argv: list[str]) -> str:
    """Run the CLI; check exit code 2, no traceback, and exactly one error line (the last; log lines such as
    warnings may precede it). Returns that line."""
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("vggtkit ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert errors[0].startswith(f"vggtkit {argv[0]}: error: ")
    return errors[0]


def _image(path: Path, size=(40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (100, 120, 140)).save(path)
    return path


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: (p / "empty").mkdir() or [str(p / "empty")], "no image files in folder"),
        (lambda p: [str(p / "nothing_here.jpg")], "input not found"),
        (
            lambda p: (p / "notes.txt").write_text("hi") and [str(p / "notes.txt")],
            "neither an image nor a video",
        ),
        (
            lambda p: (
                (p / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really") and [str(p / "broken.png")]
            ),
            "cannot read .*broken.png.* as an image",
        ),
        (
            lambda p: (p / "empty.mp4").write_bytes(b"") or [str(p / "empty.mp4")],
            "no decodable frame in .*empty.mp4",
        ),
        (lambda p: [str(_image(p / "tiny.png", (5, 5)))], "5x5 pixels, smaller than one 14x14 patch"),
    ],
)
def test_input_mistakes(tmp_path: Path, checkpoint: Path, capsys, setup, message: str) -> None:
    inputs = setup(tmp_path)
    line = _error_line(
        capsys, ["reconstruct", *inputs, "-o", str(tmp_path / "out"), "--checkpoint", str(checkpoint), *RES]
    )
    assert __import__("re").search(message, line), line


def test_option_mistakes(tmp_path: Path, checkpoint: Path, capsys) -> None:
    image = str(_image(tmp_path / "a.png"))
    base = ["reconstruct", image, "--checkpoint", str(checkpoint), *RES]
    (tmp_path / "file").write_text("")
    assert "is a file" in _error_line(capsys, [*base, "-o", str(tmp_path / "file")])
    line = _error_line(capsys, [*base, "-o", str(tmp_path / "o"), "--export", "glb,gltf"])
    assert "unknown export 'gltf'" in line and "colmap" in line
    assert "percentile" in _error_line(capsys, [*base, "-o", str(tmp_path / "o"), "--conf-threshold", "120"])
    assert "multiple of 14" in _error_line(
        capsys,
        [
            "reconstruct",
            image,
            "-o",
            str(tmp_path / "o"),
            "--checkpoint",
            str(checkpoint),
            "--resolution",
            "50",
        ],
    )
    assert "--fps must be > 0" in _error_line(capsys, [*base, "-o", str(tmp_path / "o"), "--fps", "0"])
    assert "--max-frames must be >= 1" in _error_line(
        capsys, [*base, "-o", str(tmp_path / "o"), "--max-frames", "0"]
    )
    assert "--reference must be a frame index >= 0" in _error_line(
        capsys, [*base, "-o", str(tmp_path / "o"), "--reference", "-1"]
    )
    assert "sky model not found" in _error_line(
        capsys, [*base, "-o", str(tmp_path / "o"), "--sky-model", "x.onnx"]
    )
    assert "reference frame 4 is out of range" in _error_line(
        capsys, [*base, "-o", str(tmp_path / "o"), "--reference", "4"]
    )
    assert "frame 2 is out of range" in _error_line(
        capsys, [*base, "-o", str(tmp_path / "o"), "--frame", "2"]
    )
    assert "unknown device" in _error_line(capsys, [*base, "-o", str(tmp_path / "o"), "--device", "tpu"])
    if not torch.cuda.is_available():
        assert "CUDA is not available" in _error_line(
            capsys, [*base, "-o", str(tmp_path / "o"), "--device", "cuda"]
        )


def test_checkpoint_mistakes(tmp_path: Path, checkpoint: Path, capsys) -> None:
    image = str(_image(tmp_path / "a.png"))
    base = ["reconstruct", image, "-o", str(tmp_path / "out"), *RES]
    # Weights of another configuration beside the golden config.json: a mismatch, named.
    other = VGGT(tiny_config(embed_dim=32, num_heads=2, patch_embed_num_heads=2)).save_pretrained(
        tmp_path / "other"
    )
    (other / "config.json").write_text((checkpoint / "config.json").read_text())
    line = _error_line(capsys, [*base, "--checkpoint", str(other)])
    assert "does not match" in line and "mis-shaped" in line
    assert "does not exist" in _error_line(
        capsys, [*base, "--checkpoint", str(tmp_path / "missing.safetensors")]
    )
    # A hub id that is not cached, offline: an immediate message saying how to get the weights.
    start = time.perf_counter()
    line = _error_line(capsys, [*base, "--checkpoint", "someone/not-cached-vggt"])
    assert time.perf_counter() - start < 10
    assert "not in the Hugging Face cache" in line and "hf download someone/not-cached-vggt" in line


def test_out_of_memory(tmp_path: Path, checkpoint: Path, capsys, monkeypatch) -> None:
    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 40.00 GiB")

    monkeypatch.setattr("vggtkit.pipeline.run._run_model", oom)
    line = _error_line(
        capsys,
        [
            "reconstruct",
            str(_image(tmp_path / "a.png")),
            str(_image(tmp_path / "b.png")),
            "-o",
            str(tmp_path / "out"),
            "--checkpoint",
            str(checkpoint),
            *RES,
        ],
    )
    assert "out of memory" in line and "--max-frames 1" in line and "--dtype bfloat16" in line
    assert "--resolution 42 or --resolution 28" in line
    assert "max_frames" not in line and "dtype=" not in line  # the library's words, mapped to flags


def test_library_words_become_flags(photos: Path, checkpoint: Path, tmp_path: Path, capsys) -> None:
    """Library errors name options (shared_camera=True, resolution=...); the command line names its flags."""
    line = _error_line(
        capsys,
        [
            "reconstruct",
            str(photos),
            "-o",
            str(tmp_path / "out"),
            "--checkpoint",
            str(checkpoint),
            *RES,
            "--export",
            "colmap",
            "--shared-camera",
        ],
    )
    assert "--shared-camera needs images of one size, got 3 sizes" in line
    assert line.endswith("use one camera per image (without --shared-camera)")
    _image(tmp_path / "strip" / "strip.png", (2000, 14))
    line = _error_line(
        capsys,
        [
            "reconstruct",
            str(tmp_path / "strip"),
            "-o",
            str(tmp_path / "o"),
            "--checkpoint",
            str(checkpoint),
            *RES,
        ],
    )
    assert "too elongated" in line and "use a larger resolution (--resolution 1008)" in line


@pytest.mark.parametrize(
    ("library", "cli"),
    [
        (
            "try fewer frames (max_frames=4), dtype='bfloat16'",
            "try fewer frames (--max-frames 4), --dtype bfloat16",
        ),
        ("shared_camera=True needs one size", "--shared-camera needs one size"),
        ("(shared_camera=False)", "(without --shared-camera)"),
        ("lower conf_threshold or turn off the masks", "lower --conf-threshold or turn off the masks"),
        ("fps must be > 0, got 0", "--fps must be > 0, got 0"),
        ("reference frame 4 is out of range", "reference frame 4 is out of range"),  # English, not an option
        ("frame 2 is out of range: frames 0..1", "frame 2 is out of range: frames 0..1"),
        (
            "image file not found: '/d/max_frames=3/conf_threshold.png'",
            "image file not found: '/d/max_frames=3/conf_threshold.png'",
        ),
    ],
)
def test_in_cli_terms(library: str, cli: str) -> None:
    assert in_cli_terms(library) == cli


def test_export_mistakes(tmp_path: Path, capsys) -> None:
    assert "predictions file not found" in _error_line(capsys, ["export", str(tmp_path / "none.npz")])
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    assert "is not an npz file" in _error_line(capsys, ["export", str(tmp_path / "bad.npz")])
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    assert "not a VGGT predictions file" in _error_line(capsys, ["export", str(tmp_path / "other.npz")])


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="input not found"):
        main(["--debug", "reconstruct", str(tmp_path / "missing.png"), "-o", str(tmp_path / "out")])
