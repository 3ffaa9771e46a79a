"""The float16 export: the aggregator's weights stored in float16, the numbers of PyTorch's float16 plan."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
import torch

from _golden import golden_error, load_golden
from vggtkit.inference import ExecutionPlan

DENSE_KEYS = ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf")
# float16 products against float32 ones: PyTorch's own float16 plan differs from the golden fixture by 1.7e-3.
FLOAT16_TOL = 1e-2


@pytest.fixture(scope="module")
def float16_onnx(tmp_path_factory, golden_vggt):
    pytest.importorskip("onnxscript", reason="ONNX export needs onnxscript (pip install 'vggtkit[onnx]')")
    from vggtkit.onnx import OnnxExportOptions, export_onnx

    path = tmp_path_factory.mktemp("onnx16") / "golden-fp16.onnx"
    return export_onnx(golden_vggt, path, OnnxExportOptions(image_hw=(70, 98), dtype="float16"))


def test_aggregator_weights_are_float16_in_one_file(float16_onnx, golden_vggt):
    graph = onnx.load(str(float16_onnx)).graph
    values = {dtype: 0 for dtype in (onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT)}
    for init in graph.initializer:
        if init.data_type in values:
            values[init.data_type] += int(np.prod(init.dims))
    aggregator = sum(p.numel() for p in golden_vggt.aggregator.parameters())
    heads = sum(p.numel() for m in (golden_vggt.camera_head, golden_vggt.depth_head, golden_vggt.point_head)
                for p in m.parameters())  # fmt: skip
    # The aggregator's LayerNorm parameters are cast back to float32 where they run (a few hundred values).
    assert 0.99 * aggregator <= values[onnx.TensorProto.FLOAT16] <= aggregator
    assert values[onnx.TensorProto.FLOAT] >= heads  # the heads stay float32
    assert not float16_onnx.with_name(float16_onnx.name + ".data").exists()  # small: weights embedded
    assert all(p.dtype == torch.float32 for p in golden_vggt.parameters())  # the model is left unchanged


def test_float16_outputs_match_pytorch_float16(float16_onnx, golden_vggt):
    from vggtkit.onnx import OnnxVGGT

    model = OnnxVGGT(float16_onnx, threads=1)
    assert model.info.dtype == "float16"
    g = load_golden()
    images = torch.from_numpy(g["images"])
    out = model(images, options="float16")
    plan = dataclasses.replace(
        ExecutionPlan.reference(), dtype=torch.float16, store_dtype=torch.float16, head_chunk=None
    )
    with torch.no_grad():
        ref = golden_vggt(images, options=plan)
    for key in DENSE_KEYS:
        assert out[key].dtype == torch.float32
        assert golden_error(out[key], ref[key].numpy()) <= FLOAT16_TOL, key
        assert golden_error(out[key], g[key]) <= FLOAT16_TOL, key
