"""VGGT-Omega reproduces the official code's outputs and intermediates on the golden tiny fixture, with the plain
reference plan and with lean plans (tolerance |ours - ref| <= 1e-4 (1 + |ref|))."""

from __future__ import annotations

import pytest
import torch
from _omega_golden import golden_tensor, load_omega_golden, omega_config_json

from _golden import GOLDEN_TOL, assert_golden
from vggtkit.inference import ExecutionPlan, InferenceOptions
from vggtkit.layers.dpt import ConvRunner
from vggtkit.models.common import normalize_images

OUTPUTS = (
    "camera_and_register_tokens",
    "pose_enc",
    "depth",
    "depth_conf",
    "text_alignment_embedding",
    "text_alignment_token",
)
PLANS = {
    "reference": ExecutionPlan.reference(),
    "lean": None,
    "lean-chunked": InferenceOptions(frame_chunk_size=1, query_chunk_size=5),
    "explicit": ExecutionPlan(frame_chunk=2, sequence_chunk=1, token_chunk=7, head_chunk=1, in_place=True),
}
HOOKED = {
    "camera_trunk_out": lambda m: m.camera_head.trunk[-1],
    "camera_raw": lambda m: m.camera_head.camera_branch,
    "text_readout_out": lambda m: m.text_alignment_head.readout_blocks[-1],
}


def run_with_hooks(model, images: torch.Tensor, options) -> tuple[dict, dict]:
    """The forward outputs and the outputs of the hooked head modules (the same code path)."""
    seen: dict[str, torch.Tensor] = {}
    handles = [
        get(model).register_forward_hook(lambda _m, _i, out, key=key: seen.__setitem__(key, out.clone()))
        for key, get in HOOKED.items()
    ]
    try:
        with torch.no_grad():
            out = model(images, return_all_layers=True, options=options)
    finally:
        for handle in handles:
            handle.remove()
    return out, seen


@pytest.fixture(scope="module", params=list(PLANS))
def golden_run(request, omega_model):
    return run_with_hooks(omega_model, golden_tensor("images"), PLANS[request.param])


def test_outputs(golden_run):
    out, _ = golden_run
    g = load_omega_golden()
    assert list(out)[: len(OUTPUTS)] == list(OUTPUTS)  # the official dict order
    for key in OUTPUTS:
        assert out[key].dtype == torch.float32, key
        assert_golden(key, out[key], g[key])
    assert torch.equal(out["images"], golden_tensor("images"))
    torch.testing.assert_close(out["text_alignment_embedding"].norm(dim=-1), torch.ones(1))


def test_every_aggregator_layer(golden_run, omega_model):
    out, _ = golden_run
    g = load_omega_golden()
    layers = out["aggregated_tokens_list"]
    assert len(layers) == omega_model.config.depth
    for i, tokens in enumerate(layers):
        assert_golden(f"aggregated_{i}", tokens, g[f"aggregated_{i}"])
    assert int(g["patch_token_start"]) == omega_model.config.patch_token_start
    assert tuple(g["cached_layers"]) == omega_model.config.cached_layer_indices


def test_head_intermediates(golden_run):
    _, seen = golden_run
    g = load_omega_golden()
    for key in HOOKED:
        assert_golden(key, seen[key], g[key])


def test_dense_head_levels_and_fusion(omega_model):
    g = load_omega_golden()
    images = golden_tensor("images")
    with torch.no_grad():
        layers, psi = omega_model.aggregator(images, ExecutionPlan.reference())
        head = omega_model.dense_head
        tokens = [layers[i].flatten(0, 1) for i in head.intermediate_layer_idx]
        hw = images.shape[-2:]
        for k, t in enumerate(tokens):
            assert_golden(f"dense_level_{k}", head.level(k, ConvRunner(), t, hw, psi), g[f"dense_level_{k}"])
        assert_golden("dense_fused", head.fuse(ConvRunner(), tokens, hw, psi), g["dense_fused"])


def test_patch_embedder_outputs(omega_model):
    g = load_omega_golden()
    embed = omega_model.aggregator.patch_embed
    with torch.no_grad():
        tokens = embed(normalize_images(golden_tensor("images").flatten(0, 1)))
    n = embed.num_prefix_tokens
    assert_golden("patch_tokens", tokens[:, n:], g["patch_tokens"])
    assert_golden("patch_embed_cls_token", tokens[:, 0], g["patch_embed_cls_token"])
    assert_golden("patch_embed_storage_tokens", tokens[:, 1:n], g["patch_embed_storage_tokens"])


@pytest.mark.parametrize("prefix", ["patch_embed_rope", "rope"])
def test_rope_tables(omega_model, prefix):
    g = load_omega_golden()
    fixture = omega_config_json()["fixture"]
    p = omega_model.config.patch_size
    module = (
        omega_model.aggregator.patch_embed.rope_embed
        if prefix != "rope"
        else omega_model.aggregator.rope_embed
    )
    tables = module.tables(fixture["H"] // p, fixture["W"] // p, num_prefix=0)
    D = tables.cos.shape[-1]
    sign = torch.cat([-torch.ones(D // 2), torch.ones(D // 2)])  # the tables carry the rotate-half sign
    assert_golden(f"{prefix}_cos", tables.cos[:, 0], g[f"{prefix}_cos"])
    assert_golden(f"{prefix}_sin", tables.sin_signed[:, 0] * sign, g[f"{prefix}_sin"])
    # A fresh module computes the periods the fixture stores.
    fresh = type(module)(module.head_dim)
    assert torch.equal(fresh.periods, module.periods)


@pytest.mark.parametrize("options", [ExecutionPlan.reference(), None])
def test_single_frame_without_batch_axis(omega_model, options):
    g = load_omega_golden()
    with torch.no_grad():
        out = omega_model(golden_tensor("images")[0, :1], options=options)  # (S=1, 3, H, W)
    for key in OUTPUTS:
        assert_golden(f"single_frame_{key}", out[key], g[f"single_frame_{key}"])


@pytest.mark.parametrize("options", [ExecutionPlan.reference(), None, InferenceOptions(frame_chunk_size=1)])
def test_sizes_that_are_not_multiples_of_the_patch(omega_model, options):
    g = load_omega_golden()
    images = golden_tensor("remainder_images")
    with torch.no_grad():
        out = omega_model(images, options=options)
    assert out["depth"].shape[2:4] == (64, 96)  # whole patches only: (71 // 16 * 16, 109 // 16 * 16)
    for key in OUTPUTS:
        assert_golden(f"remainder_{key}", out[key], g[f"remainder_{key}"])


def test_golden_tolerance_constant_unchanged():
    assert GOLDEN_TOL == 1e-4
