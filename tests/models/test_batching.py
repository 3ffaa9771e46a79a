"""Batches, frame chunking, kept layers and disabled heads give the same numbers as the plain path."""

from __future__ import annotations

import torch

from _golden import golden_config_dict, load_golden
from vggtkit import VGGT, VGGTConfig, tiny_config
from vggtkit.inference import ExecutionPlan
from vggtkit.layers.dpt import DenseRun


def test_batch_of_two_equals_two_single_runs(golden_vggt):
    g = load_golden()
    images = torch.from_numpy(g["images"])[0]
    other = images.flip(0)  # a different sequence: another reference frame
    queries = torch.from_numpy(g["query_points"])[0]
    with torch.no_grad():
        batched = golden_vggt(torch.stack([images, other]), torch.stack([queries, queries]))
        first = golden_vggt(images, queries)
        second = golden_vggt(other, queries)
    # The tracker's sampling amplifies rounding differences of batched matmuls: 1e-3 px, far below the
    # golden 0.1 px.
    tolerances = {"pose_enc": 1e-5, "depth": 1e-5, "world_points_conf": 1e-5, "track": 1e-3, "vis": 1e-4}
    for key, tol in tolerances.items():
        torch.testing.assert_close(batched[key][0], first[key][0], rtol=tol, atol=tol)
        torch.testing.assert_close(batched[key][1], second[key][0], rtol=tol, atol=tol)


def test_reference_frame_matters(golden_vggt):
    g = load_golden()
    images = torch.from_numpy(g["images"])[0]
    with torch.no_grad():
        a = golden_vggt(images)["depth"][0, 1]
        b = golden_vggt(images[[1, 0, 2]])["depth"][0, 0]
    assert not torch.allclose(a, b)  # frame 0 has its own camera/register tokens


def test_dpt_frame_chunks_match_one_pass(golden_vggt):
    images = torch.rand(1, 11, 3, 28, 42)
    with torch.no_grad():
        tokens, start = golden_vggt.aggregator(images)
        chunked = golden_vggt.depth_head(tokens, images, start, DenseRun(frames_chunk=4))
        whole = golden_vggt.depth_head(tokens, images, start, DenseRun(frames_chunk=None))
    torch.testing.assert_close(chunked[0], whole[0])
    torch.testing.assert_close(chunked[1], whole[1])


def test_only_head_layers_are_kept(golden_vggt):
    images = torch.rand(1, 2, 3, 28, 28)
    with torch.no_grad():
        tokens, _ = golden_vggt.aggregator(images, ExecutionPlan())
    kept = [i for i, t in enumerate(tokens) if t is not None]
    assert kept == list(golden_vggt.config.head_layers)
    config = tiny_config(depth=6, dpt_layers=(0, 2, 3, 4))
    assert config.head_layers == (0, 2, 3, 4, 5)


def test_disabled_heads_have_no_keys_or_outputs():
    config = VGGTConfig(**{**golden_config_dict(), "enable_point": False, "enable_track": False})
    model = VGGT(config).eval()
    assert not any(k.startswith(("point_head", "track_head")) for k in model.state_dict())
    with torch.no_grad():
        out = model(torch.rand(2, 3, 28, 28), torch.rand(4, 2) * 27)
    assert "world_points" not in out and "track" not in out
    assert out["depth"].shape == (1, 2, 28, 28, 1)


def test_training_mode_has_no_images_key_and_backpropagates():
    model = VGGT(tiny_config(enable_track=False)).train()
    out = model(torch.rand(1, 2, 3, 28, 28), options=ExecutionPlan(gradient_checkpointing=True))
    assert "images" not in out
    (out["depth"].mean() + out["pose_enc"].square().mean()).backward()
    assert model.aggregator.frame_blocks[0].attn.qkv.weight.grad is not None


def test_heads_stay_float32_under_cpu_autocast(golden_vggt):
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = golden_vggt(torch.rand(2, 3, 28, 28), torch.rand(3, 2) * 27)
    for key in ("pose_enc", "depth", "world_points", "track", "vis"):
        assert out[key].dtype == torch.float32, key


def test_conv_patch_embed_variant():
    model = VGGT(tiny_config(patch_embed="conv", enable_track=False)).eval()
    assert "aggregator.patch_embed.proj.weight" in model.state_dict()
    with torch.no_grad():
        out = model(torch.rand(3, 3, 42, 28))
    assert out["world_points"].shape == (1, 3, 42, 28, 3)
