"""The exported golden tiny model, run by onnxruntime, reproduces the golden fixture (produced by the official
implementation) within its tolerances, for any frame and query count."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from _golden import assert_golden, golden_config_dict, load_golden
from vggtkit import VGGTConfig, reconstruct
from vggtkit.inference import ExecutionPlan

TRACK_TOL_PX = 0.1
VIS_CONF_TOL = 0.01
DENSE_KEYS = ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf")


@pytest.fixture(scope="module")
def golden_outputs(golden_onnx_model):
    g = load_golden()
    return golden_onnx_model(torch.from_numpy(g["images"]), torch.from_numpy(g["query_points"]))


@pytest.mark.parametrize("key", DENSE_KEYS)
def test_camera_depth_and_point_heads_match_the_golden_fixture(golden_outputs, key):
    assert_golden(key, golden_outputs[key], load_golden()[key])


def test_tracks_match_the_golden_fixture(golden_outputs):
    g = load_golden()
    assert np.abs(golden_outputs["track"].numpy() - g["track"]).max() <= TRACK_TOL_PX
    assert np.abs(golden_outputs["vis"].numpy() - g["vis"]).max() <= VIS_CONF_TOL
    assert np.abs(golden_outputs["conf"].numpy() - g["conf"]).max() <= VIS_CONF_TOL
    torch.testing.assert_close(golden_outputs["track"][:, 0], torch.from_numpy(g["query_points"]))


def test_one_frame_matches_the_golden_fixture(golden_onnx_model):
    """The graph exported once (traced with 2 frames) runs 1 frame; without queries it returns no tracks."""
    g = load_golden()
    out = golden_onnx_model(torch.from_numpy(g["images"][0, :1]))
    assert_golden("single_frame_depth", out["depth"], g["single_frame_depth"])
    assert_golden("single_frame_pose_enc", out["pose_enc"], g["single_frame_pose_enc"])
    assert "track" not in out and out["images"].shape == (1, 1, 3, 70, 98)


@pytest.mark.parametrize(("frames", "queries"), [(5, 1), (2, 8)])
def test_frame_and_query_counts_match_pytorch(golden_onnx_model, golden_vggt, frames, queries):
    generator = torch.Generator().manual_seed(frames)
    images = torch.rand(frames, 3, 70, 98, generator=generator)
    points = torch.rand(queries, 2, generator=generator) * torch.tensor([97.0, 69.0])
    with torch.no_grad():
        ref = golden_vggt(images, points, options=ExecutionPlan.reference())
    out = golden_onnx_model(images, points)
    for key in DENSE_KEYS:
        assert out[key].shape == ref[key].shape, key
        assert_golden(key, out[key], ref[key].numpy())
    assert out["track"].shape == (1, frames, queries, 2)
    assert (out["track"] - ref["track"]).abs().max() <= TRACK_TOL_PX
    assert (out["vis"] - ref["vis"]).abs().max() <= VIS_CONF_TOL
    assert (out["conf"] - ref["conf"]).abs().max() <= VIS_CONF_TOL


def test_graph_names_symbolic_counts_and_metadata(golden_onnx, golden_onnx_model):
    graph = onnx.load(str(golden_onnx), load_external_data=False).graph
    dims = {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*graph.input, *graph.output]
    }
    assert dims["images"] == ["frames", 3, 70, 98]
    assert dims["query_points"] == ["points", 2]
    assert [v.name for v in graph.output] == [*DENSE_KEYS, "track", "vis", "conf"]
    assert dims["depth"] == [1, "frames", 70, 98, 1]
    assert dims["track"] == [1, "frames", "points", 2]
    assert golden_onnx.with_name("golden.onnx.data").stat().st_size > golden_onnx.stat().st_size
    info = golden_onnx_model.info
    assert info.config == VGGTConfig(**golden_config_dict())
    assert (info.image_hw, info.dtype, info.tracks) == ((70, 98), "float32", True)


def test_reconstruct_with_the_onnx_runtime_matches_pytorch(golden_onnx, golden_vggt):
    images = torch.from_numpy(load_golden()["images"][0])
    ours = reconstruct(images, model=str(golden_onnx), runtime="onnx", device="cpu", reference=1)
    ref = reconstruct(images, model=golden_vggt, device="cpu", reference=1)
    for key in ("depth", "depth_conf", "world_points", "extrinsic", "intrinsic"):
        assert_golden(key, getattr(ours, key), getattr(ref, key))
