"""One loader for every family: the family is recognised from the checkpoint's keys."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from _golden import GOLDEN_DIR, golden_config_dict
from vggtkit import VGGT, CheckpointError, tiny_config
from vggtkit.models import FAMILIES, Family, detect_family, from_pretrained


def test_vggt_checkpoints_load_through_the_family_loader(tmp_path, golden_vggt):
    (tmp_path / "config.json").write_text(json.dumps(golden_config_dict()))
    (tmp_path / "model.safetensors").write_bytes((GOLDEN_DIR / "weights.safetensors").read_bytes())
    model = from_pretrained(tmp_path)
    assert isinstance(model, VGGT) and model.config == golden_vggt.config
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in golden_vggt.state_dict().items())


def test_unknown_and_mixed_key_sets_are_named(tmp_path, monkeypatch):
    save_file({"encoder.weight": torch.zeros(2)}, tmp_path / "foreign.safetensors")
    with pytest.raises(CheckpointError, match=r"not of a known model family.*encoder\.weight"):
        from_pretrained(tmp_path / "foreign.safetensors")
    other = Family("other", object, object, "aggregator.other_blocks.")
    monkeypatch.setitem(FAMILIES, "other", other)
    with pytest.raises(CheckpointError, match="mixes the keys"):
        detect_family(["aggregator.global_blocks.0.x", "aggregator.other_blocks.0.y"])
    assert detect_family(["aggregator.other_blocks.3"]) is other


def test_a_config_of_another_family_is_refused(tmp_path):
    state = load_file(GOLDEN_DIR / "weights.safetensors")
    torch.save(state, tmp_path / "model.pt")

    class Other:
        pass

    with pytest.raises(CheckpointError, match="configuration given is a Other"):
        from_pretrained(tmp_path / "model.pt", config=Other())
    model = from_pretrained(tmp_path / "model.pt", config=tiny_config().__class__(**golden_config_dict()))
    assert isinstance(model, VGGT)
