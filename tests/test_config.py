"""VGGTConfig accepts the official and golden configs and rejects impossible ones with clear messages."""

from __future__ import annotations

import dataclasses

import pytest

from _golden import golden_config_dict
from vggtkit import VGGTConfig


def test_defaults_are_vggt_1b():
    c = VGGTConfig()
    assert (c.img_size, c.patch_size, c.embed_dim, c.depth, c.num_heads) == (518, 14, 1024, 24, 16)
    assert c.dpt_layers == (4, 11, 17, 23) and c.dpt_out_channels == (256, 512, 1024, 1024)
    assert c.aa_order == ("frame", "global") and c.patch_start_idx == 5
    assert [f.name for f in dataclasses.fields(VGGTConfig)][:3] == ["img_size", "patch_size", "embed_dim"]


def test_golden_dict_with_lists_round_trips():
    c = VGGTConfig(**golden_config_dict())
    assert c.dpt_layers == (0, 1, 2, 3) and isinstance(c.aa_order, tuple)
    assert VGGTConfig(**c.to_dict()) == c


@pytest.mark.parametrize(
    "hub",
    [
        {"img_size": 518, "patch_size": 14, "embed_dim": 1024},
        {"img_size": 518, "patch_size": 14, "embed_dim": 1024, "enable_track": False, "enable_point": True},
    ],
)
def test_official_hub_config(hub):
    assert VGGTConfig(**hub).embed_dim == 1024


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"embed_dim": 100, "num_heads": 16}, "divisible by num_heads"),
        ({"img_size": 500}, "multiple of patch_size"),
        ({"patch_embed": "vit"}, "patch_embed must be one of"),
        ({"aa_order": ("frame", "frame")}, "aa_order"),
        ({"depth": 24, "aa_block_size": 5}, "aa_block_size"),
        ({"dpt_layers": (4, 11, 17, 24)}, "out of range"),
        ({"dpt_layers": (4, 11, 17)}, "exactly 4"),
        ({"rope_freq": 0}, "rope_freq"),
        ({"track_hidden_size": 36}, "track_hidden_size"),
        (
            {"enable_camera": False, "enable_depth": False, "enable_point": False, "enable_track": False},
            "head",
        ),
    ],
)
def test_impossible_combinations_raise(overrides, message):
    with pytest.raises(ValueError, match=message):
        VGGTConfig(**overrides)


def test_unknown_field_is_named():
    with pytest.raises(ValueError, match="unknown VGGTConfig field.*'embed_dims'"):
        VGGTConfig.from_dict({"embed_dims": 3})
