"""Mistakes in exporting and running ONNX models are ValueErrors that name the problem and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vggtkit import VGGT, VGGTConfig, VGGTOmega, tiny_config
from vggtkit.models.omega import omega_preset_config
from vggtkit.models.vggt.config import preset_config
from vggtkit.onnx import OnnxExportOptions, OnnxModelInfo, OnnxVGGT, export_onnx
from vggtkit.onnx.export import export_info


@pytest.fixture(scope="module")
def no_track_model():
    return VGGT(tiny_config(enable_track=False)).eval()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(dtype="bfloat16"), "float32, float16 for an ONNX export"),
        (dict(dtype="int8"), "dtype must be one of"),
        (dict(image_hw=(70,)), r"\(height, width\)"),
        (dict(image_hw=(70, 0)), r"\(height, width\)"),
    ],
)
def test_export_options_check_themselves(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OnnxExportOptions(**kwargs)


def test_export_checks_size_heads_model_and_path(no_track_model, tmp_path):
    with pytest.raises(
        ValueError, match=r"100x70 \(width x height\) is not a multiple .* 14; use e.g. 98x70"
    ):
        export_info(no_track_model, OnnxExportOptions(image_hw=(70, 100)))
    with pytest.raises(ValueError, match="no track head; export it without tracks"):
        export_info(no_track_model, OnnxExportOptions(tracks=True))
    with pytest.raises(ValueError, match="VGGT-Omega models are not exported .* run them with PyTorch"):
        export_info(VGGTOmega(omega_preset_config("tiny")), OnnxExportOptions())
    with pytest.raises(ValueError, match="supports VGGT models, got Linear"):
        export_info(torch.nn.Linear(2, 2), OnnxExportOptions())
    with pytest.raises(ValueError, match=r"must end in \.onnx"):
        export_onnx(no_track_model, tmp_path / "model.bin")
    (tmp_path / "dir.onnx").mkdir()
    with pytest.raises(ValueError, match="is a folder"):
        export_onnx(no_track_model, tmp_path / "dir.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.onnx"]  # nothing written


def test_the_default_size_is_the_trained_size_and_outputs_follow_the_heads():
    info = export_info(VGGT(preset_config("test-tiny")), OnnxExportOptions())
    assert info.image_hw == (56, 56)
    assert info.outputs == ("pose_enc", "depth", "depth_conf")  # no point head in this configuration
    assert OnnxModelInfo.from_json(info.to_json(), "x.onnx") == info


def test_unreadable_metadata_says_to_export_again():
    text = json.dumps({"format": 99, "family": "vggt"})
    with pytest.raises(ValueError, match="x.onnx has unreadable vggtkit metadata .* export it again"):
        OnnxModelInfo.from_json(text, "x.onnx")


def test_files_that_are_not_vggtkit_onnx_models(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    with pytest.raises(ValueError, match="does not exist or is not a file"):
        OnnxVGGT(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf")
    with pytest.raises(ValueError, match="onnxruntime cannot load .*garbage.onnx"):
        OnnxVGGT(garbage)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [x])
    plain = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), plain)
    with pytest.raises(ValueError, match="not exported by vggtkit: it has no vggtkit metadata"):
        OnnxVGGT(plain)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (torch.rand(2, 3, 70, 112), r"takes 98x70 frames \(width x height\), got 112x70"),
        (torch.rand(2, 2, 3, 70, 98), r"\(S, 3, H, W\) or \(1, S, 3, H, W\) \(one sequence\)"),
        (torch.rand(2, 4, 70, 98), r"\(S, 3, H, W\)"),
        (torch.full((1, 3, 70, 98), 255, dtype=torch.uint8), "floating point .* divide uint8 by 255"),
        (torch.full((1, 3, 70, 98), 2.0), r"must lie in \[0, 1\], got min 2 and max 2"),
    ],
)
def test_bad_images(golden_onnx_model, images, message):
    with pytest.raises(ValueError, match=message):
        golden_onnx_model(images)


def test_bad_queries_and_precision(golden_onnx_model):
    images = torch.rand(1, 3, 70, 98)
    for points in (torch.zeros(0, 2), torch.zeros(3, 3), torch.zeros(2, 3, 2)):
        with pytest.raises(ValueError, match=r"query_points must have shape \(N, 2\)"):
            golden_onnx_model(images, points)
    with pytest.raises(
        ValueError, match="computes in float32, chosen when it was exported; dtype='bfloat16'"
    ):
        golden_onnx_model(images, options="bfloat16")
    out = golden_onnx_model(np.asarray(images), options=torch.float32)  # numpy in, the default dtype
    assert out["depth"].shape == (1, 1, 70, 98, 1)


def test_the_golden_config_round_trips(golden_onnx_model):
    assert isinstance(golden_onnx_model.config, VGGTConfig)
    assert "98x70" in repr(golden_onnx_model) and Path(golden_onnx_model.path).suffix == ".onnx"


def test_runtime_options_check_themselves():
    from vggtkit.pipeline import ReconstructOptions

    with pytest.raises(ValueError, match="runtime must be 'torch' or 'onnx', got 'tensorrt'"):
        ReconstructOptions(runtime="tensorrt")
    with pytest.raises(ValueError, match="with runtime='onnx' give chunk_size instead"):
        ReconstructOptions(runtime="onnx", max_memory="8GB")
    assert ReconstructOptions(runtime="onnx", chunk_size=8).runtime == "onnx"


def test_reconstruct_needs_an_onnx_file_for_the_onnx_runtime(golden_vggt, tmp_path):
    from vggtkit import reconstruct

    images = torch.rand(2, 3, 70, 98)
    with pytest.raises(ValueError, match="runtime='onnx' runs an .onnx file .* got VGGT"):
        reconstruct(images, golden_vggt, runtime="onnx", device="cpu")
    with pytest.raises(ValueError, match="model.onnx is an ONNX model; run it with runtime='onnx'"):
        reconstruct(images, str(tmp_path / "model.onnx"), device="cpu")
