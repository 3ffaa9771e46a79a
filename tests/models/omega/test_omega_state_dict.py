"""VGGT-Omega's configuration and state dict: exactly the released checkpoints' keys, shapes and buffers, and the
golden fixture's weights load strictly."""

from __future__ import annotations

import json

import pytest
import torch
from _omega_golden import OMEGA_DIR, SHAPES, omega_config_json, omega_model_fields
from safetensors.torch import load_file

from vggtkit import VGGTOmega, VGGTOmegaConfig
from vggtkit.models.omega import omega_preset_config
from vggtkit.models.omega.config import FIXED


@pytest.mark.parametrize(
    ("variant", "config"),
    [
        ("vggt_omega_1b_512", VGGTOmegaConfig()),
        ("vggt_omega_1b_256_text", VGGTOmegaConfig(enable_alignment=True)),
    ],
)
def test_released_keys_shapes_and_buffers_on_meta_device(variant, config):
    ref = json.loads(SHAPES.read_text())["variants"][variant]
    with torch.device("meta"):
        model = VGGTOmega(config)
    state = model.state_dict()
    ours = {k: list(v.shape) for k, v in state.items()}
    assert sorted(set(ref["shapes"]) - set(ours)) == [], "missing keys"
    assert sorted(set(ours) - set(ref["shapes"])) == [], "unexpected keys"
    assert {k: v for k, v in ours.items() if ref["shapes"][k] != v} == {}, "mis-shaped keys"
    assert len(ours) == ref["n_keys"]
    assert sum(v.numel() for v in state.values()) == ref["n_values"]
    assert sum(p.numel() for p in model.parameters()) == ref["n_parameters"]
    assert sorted(name for name, _ in model.named_buffers()) == sorted(ref["buffers"])  # all persistent


def test_fixture_config_and_weights_load_strictly():
    model_section = omega_config_json()["model"]
    config = VGGTOmegaConfig(**omega_model_fields())
    assert VGGTOmegaConfig.from_dict(model_section) == config  # "fixed" holds exactly the hard-coded settings
    assert config == omega_preset_config("tiny")
    model = VGGTOmega(config)
    state = load_file(OMEGA_DIR / "weights.safetensors")
    model.load_state_dict(state, strict=True)
    mask = model.aggregator.frame_blocks[0].attn.qkv.bias_mask
    assert torch.equal(
        mask, state["aggregator.frame_blocks.0.attn.qkv.bias_mask"]
    )  # stored masks, not a pattern


def test_fresh_model_buffers_follow_dinov3():
    model = VGGTOmega(omega_preset_config("tiny"))
    mask = model.camera_head.trunk[0].attn.qkv.bias_mask
    third = mask.numel() // 3
    assert mask[:third].eq(1).all() and mask[third : 2 * third].eq(0).all() and mask[2 * third :].eq(1).all()
    D = model.config.embed_dim // model.config.num_heads
    periods = model.aggregator.rope_embed.periods
    torch.testing.assert_close(periods, 100.0 ** (torch.arange(D // 4) * 4 / D), rtol=1e-6, atol=0)
    with torch.no_grad():
        out = model(torch.rand(2, 3, 32, 48))
    assert all(torch.isfinite(out[k]).all() for k in ("pose_enc", "depth", "depth_conf"))


def test_defaults_are_the_released_512_model():
    c = VGGTOmegaConfig()
    assert (c.patch_size, c.embed_dim, c.depth, c.num_register_tokens, c.patch_token_start) == (
        16,
        1024,
        24,
        16,
        17,
    )
    assert c.register_attention_block_indices == (2, 6, 9, 14, 20)
    assert c.cached_layer_indices == c.dense_layers == (4, 11, 17, 23)
    assert (c.image_resolution, c.enable_alignment) == (512, False)
    assert omega_preset_config("1b-256-text") == VGGTOmegaConfig(enable_alignment=True, image_resolution=256)
    assert VGGTOmegaConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"embed_dim": 1000}, "multiple of 4 \\* num_heads"),
        ({"patch_embed_num_heads": 3}, "patch_embed_num_heads"),
        ({"patch_size": 14}, "multiple of 4"),
        ({"register_attention_block_indices": [24]}, "out of range"),
        ({"cached_layer_indices": [4, 11, 17]}, "must include the last layer 23"),
        ({"dense_layers": [4, 11, 17, 22]}, "not cached"),
        ({"depth": 12}, "out of range"),
        ({"camera_num_heads": 7}, "camera_num_heads"),
        ({"image_resolution": 500}, "not a multiple of patch_size"),
        ({"enable_camera": False, "enable_depth": False}, "at least one head"),
        ({"dense_out_channels": [1, 2, 3]}, "4 positive widths"),
        ({"cached_layer_indices": 5}, "sequence"),
    ],
)
def test_impossible_configurations_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        VGGTOmegaConfig(**overrides)


def test_unknown_fields_and_other_fixed_settings_are_refused():
    with pytest.raises(ValueError, match="unknown VGGTOmegaConfig field"):
        VGGTOmegaConfig.from_dict({"img_size": 518})
    with pytest.raises(ValueError, match="block_norm_eps"):
        VGGTOmegaConfig.from_dict({"fixed": {**FIXED, "block_norm_eps": 1e-6}})
    with pytest.raises(ValueError, match="either a VGGTOmegaConfig or keyword fields"):
        VGGTOmega(VGGTOmegaConfig(), depth=3)


def test_dense_layers_need_no_caching_without_the_dense_head():
    config = VGGTOmegaConfig(enable_depth=False, cached_layer_indices=[23])
    assert config.head_layers == (23,)


def test_head_blocks_keep_the_mlp_ratio_of_4():
    """``mlp_ratio`` is the aggregator's; the official heads hard-code 4."""
    model = VGGTOmega(omega_preset_config("tiny", mlp_ratio=2.0))
    C = model.config.embed_dim
    assert model.aggregator.frame_blocks[0].mlp.fc1.out_features == 2 * C
    assert model.camera_head.trunk[0].mlp.fc1.out_features == 4 * 2 * C
    assert model.text_alignment_head.readout_blocks[0].mlp.fc1.out_features == 4 * 2 * C


def test_no_storage_tokens_no_key():
    """As DINOv3, the patch embedder has a ``storage_tokens`` parameter only when it has storage tokens."""
    model = VGGTOmega(omega_preset_config("tiny", patch_embed_n_storage_tokens=0))
    assert "aggregator.patch_embed.storage_tokens" not in model.state_dict()
    with torch.no_grad():
        out = model(torch.rand(1, 2, 3, 32, 32))
    assert torch.isfinite(out["depth"]).all()
