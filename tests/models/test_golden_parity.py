"""The model reproduces the official implementation's outputs on the golden tiny fixture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _golden import assert_golden, golden_model, load_golden

TRACK_TOL_PX = 0.1
VIS_CONF_TOL = 0.01


@pytest.fixture(scope="module")
def golden_vggt(device):
    """The golden model on the device under test ($VGGTKIT_TEST_DEVICE)."""
    return golden_model().to(device)


@pytest.fixture(scope="module")
def outputs(golden_vggt, device):
    g = load_golden()
    with torch.no_grad():
        out = golden_vggt(
            torch.from_numpy(g["images"]).to(device),
            torch.from_numpy(g["query_points"]).to(device),
            return_all_layers=True,
        )
    return out


@pytest.mark.parametrize("key", ["pose_enc", "depth", "depth_conf", "world_points", "world_points_conf"])
def test_dense_outputs_and_pose(outputs, key):
    assert_golden(key, outputs[key], load_golden()[key])


def test_every_camera_iteration(outputs):
    g = load_golden()
    assert len(outputs["pose_enc_list"]) == 4
    for i, pose in enumerate(outputs["pose_enc_list"]):
        assert_golden(f"pose_enc_iter{i}", pose, g[f"pose_enc_iter{i}"])


def test_every_aggregator_layer(outputs):
    g = load_golden()
    layers = outputs["aggregated_tokens_list"]
    n_layers = sum(k.startswith("aggregated_") for k in g)
    assert len(layers) == n_layers
    for i, tokens in enumerate(layers):
        assert_golden(f"aggregated_{i}", tokens, g[f"aggregated_{i}"])


def test_patch_tokens(golden_vggt, device):
    g = load_golden()
    with torch.no_grad():
        tokens = golden_vggt.aggregator.embed_patches(torch.from_numpy(g["images"]).to(device))
    assert_golden("patch_tokens", tokens, g["patch_tokens"])


def test_tracks(outputs):
    g = load_golden()
    iters = sorted(k for k in g if k.startswith("track_iter"))
    assert len(outputs["track_list"]) == len(iters)
    for key, track in zip(iters, outputs["track_list"], strict=True):
        assert np.abs(track.cpu().numpy() - g[key]).max() <= TRACK_TOL_PX, key
    assert np.abs(outputs["track"].cpu().numpy() - g["track"]).max() <= TRACK_TOL_PX
    assert np.abs(outputs["vis"].cpu().numpy() - g["vis"]).max() <= VIS_CONF_TOL
    assert np.abs(outputs["conf"].cpu().numpy() - g["conf"]).max() <= VIS_CONF_TOL


def test_single_frame_without_batch_axis(golden_vggt, device):
    g = load_golden()
    with torch.no_grad():
        out = golden_vggt(torch.from_numpy(g["images"][0, :1]).to(device))  # (S=1, 3, H, W)
    assert_golden("single_frame_depth", out["depth"], g["single_frame_depth"])
    assert_golden("single_frame_pose_enc", out["pose_enc"], g["single_frame_pose_enc"])


def test_official_keys_and_shapes(outputs):
    g = load_golden()
    B, S, _, H, W = g["images"].shape
    N = g["query_points"].shape[1]
    expected = {
        "pose_enc": (B, S, 9),
        "depth": (B, S, H, W, 1),
        "depth_conf": (B, S, H, W),
        "world_points": (B, S, H, W, 3),
        "world_points_conf": (B, S, H, W),
        "images": (B, S, 3, H, W),
        "track": (B, S, N, 2),
        "vis": (B, S, N),
        "conf": (B, S, N),
    }
    for key, shape in expected.items():
        assert tuple(outputs[key].shape) == shape, key
        assert outputs[key].dtype == torch.float32, key
    assert torch.equal(outputs["images"].cpu(), torch.from_numpy(g["images"]))
    assert (outputs["depth_conf"] > 1).all() and (outputs["world_points_conf"] > 1).all()  # expp1


def test_query_frame_tracks_stay_at_queries(outputs):
    g = load_golden()
    torch.testing.assert_close(outputs["track"][:, 0].cpu(), torch.from_numpy(g["query_points"]))
