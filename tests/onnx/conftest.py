"""One export of the golden tiny model, shared by the ONNX tests: through the command line, with the track head and
the weights in a separate file, for 98x70 frames (the golden fixture's size)."""

from __future__ import annotations

from pathlib import Path

import pytest

from _golden import golden_model

GOLDEN_SIZE = "98x70"  # width x height of the golden fixture's frames


@pytest.fixture(scope="session")
def golden_checkpoint(tmp_path_factory) -> Path:
    """The golden tiny weights as a checkpoint folder (config.json + model.safetensors)."""
    return golden_model().save_pretrained(tmp_path_factory.mktemp("ckpt") / "golden-tiny")


@pytest.fixture(scope="session")
def golden_onnx(tmp_path_factory, golden_checkpoint) -> Path:
    pytest.importorskip("onnxscript", reason="ONNX export needs onnxscript (pip install 'vggtkit[onnx]')")
    pytest.importorskip("onnxruntime", reason="running ONNX models needs onnxruntime")
    from vggtkit.cli import main

    path = tmp_path_factory.mktemp("onnx") / "golden.onnx"
    argv = ["export-onnx", "--checkpoint", str(golden_checkpoint), "-o", str(path), "--size", GOLDEN_SIZE]
    assert main([*argv, "--tracks", "--external-data"]) == 0
    return path


@pytest.fixture(scope="session")
def golden_onnx_model(golden_onnx):
    from vggtkit.onnx import OnnxVGGT

    return OnnxVGGT(golden_onnx, threads=1)
