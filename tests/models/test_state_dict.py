"""The default configuration has exactly the released VGGT-1B state-dict keys and shapes."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vggtkit import VGGT, VGGTConfig

SHAPES = Path(__file__).parents[1] / "fixtures" / "vggt1b_state_dict_shapes.json"


def test_vggt1b_keys_and_shapes_on_meta_device():
    with torch.device("meta"):
        model = VGGT(VGGTConfig())
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    ref = json.loads(SHAPES.read_text())
    assert sorted(set(ref) - set(ours)) == [], "missing keys"
    assert sorted(set(ours) - set(ref)) == [], "unexpected keys"
    assert {k: v for k, v in ours.items() if ref[k] != v} == {}, "mis-shaped keys"
    assert len(ours) == 1797
    assert sum(v.numel() for v in model.state_dict().values()) == 1_256_537_516


def test_mask_token_is_frozen_and_no_buffers_are_saved():
    with torch.device("meta"):
        model = VGGT(VGGTConfig())
    assert not model.aggregator.patch_embed.mask_token.requires_grad
    assert set(model.state_dict()) == {name for name, _ in model.named_parameters()}


def test_training_configuration_key_count():
    with torch.device("meta"):
        model = VGGT(VGGTConfig(enable_point=False, enable_track=False))
    assert len(model.state_dict()) == 1341
