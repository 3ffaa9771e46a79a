"""from_pretrained / save_pretrained: folders, files, hub ids (offline), and strict key checks."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from _golden import GOLDEN_DIR, golden_config_dict, load_golden
from vggtkit import VGGT, CheckpointError, VGGTConfig, tiny_config


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """The golden tiny weights in the Hugging Face layout: a valid official-format checkpoint."""
    folder = tmp_path_factory.mktemp("golden_hf")
    (folder / "config.json").write_text(json.dumps(golden_config_dict()))
    (folder / "model.safetensors").write_bytes((GOLDEN_DIR / "weights.safetensors").read_bytes())
    return folder


def _depth(model: VGGT) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.from_numpy(load_golden()["images"]))["depth"]


def test_from_local_folder_matches_golden(hf_folder, golden_vggt):
    model = VGGT.from_pretrained(hf_folder)
    assert not model.training
    assert model.config == golden_vggt.config
    torch.testing.assert_close(_depth(model), _depth(golden_vggt), rtol=0, atol=0)
    assert not model.aggregator.patch_embed.mask_token.requires_grad
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_save_pretrained_round_trip(tmp_path, golden_vggt):
    golden_vggt.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]
    reloaded = VGGT.from_pretrained(tmp_path / "ckpt")
    torch.testing.assert_close(_depth(reloaded), _depth(golden_vggt), rtol=0, atol=0)


def test_weights_file_with_config_beside_it(hf_folder):
    model = VGGT.from_pretrained(hf_folder / "model.safetensors")
    assert model.config.embed_dim == 64


def test_official_model_pt_format(tmp_path, golden_vggt):
    # The official model.pt is a plain torch state dict with no config: pass the config explicitly.
    torch.save(load_file(GOLDEN_DIR / "weights.safetensors"), tmp_path / "model.pt")
    model = VGGT.from_pretrained(tmp_path / "model.pt", config=golden_vggt.config)
    torch.testing.assert_close(_depth(model), _depth(golden_vggt), rtol=0, atol=0)


def test_training_checkpoint_wrappers_are_unwrapped(tmp_path, golden_vggt):
    state = {f"module.{k}": v for k, v in load_file(GOLDEN_DIR / "weights.safetensors").items()}
    torch.save({"model": state, "epoch": torch.tensor(3)}, tmp_path / "ckpt.pth")
    model = VGGT.from_pretrained(tmp_path / "ckpt.pth", config=golden_vggt.config)
    torch.testing.assert_close(_depth(model), _depth(golden_vggt), rtol=0, atol=0)


def test_missing_unexpected_and_misshaped_keys_are_named(tmp_path, hf_folder):
    state = load_file(hf_folder / "model.safetensors")
    state.pop("camera_head.token_norm.weight")
    state["camera_head.extra"] = torch.zeros(1)
    state["depth_head.norm.bias"] = torch.zeros(7)
    from safetensors.torch import save_file

    save_file(state, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(golden_config_dict()))
    with pytest.raises(CheckpointError) as info:
        VGGT.from_pretrained(tmp_path)
    text = str(info.value)
    assert "camera_head.token_norm.weight" in text and "camera_head.extra" in text
    assert "depth_head.norm.bias" in text and "(7,)" in text


def test_wrong_config_for_weights(hf_folder):
    with pytest.raises(CheckpointError, match="does not match the model configuration"):
        VGGT.from_pretrained(hf_folder / "model.safetensors", config=tiny_config(embed_dim=32))


def test_hub_id_not_cached_fails_fast_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import time

    start = time.perf_counter()
    with pytest.raises(CheckpointError, match="not in the Hugging Face cache"):
        VGGT.from_pretrained("facebook/VGGT-1B", cache_dir=tmp_path)
    assert time.perf_counter() - start < 5


def test_hub_id_from_cache(tmp_path, hf_folder, golden_vggt):
    # Lay the checkpoint out exactly as huggingface_hub caches it, then load it by repo id, offline.
    snapshot = tmp_path / "models--facebook--VGGT-tiny" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (tmp_path / "models--facebook--VGGT-tiny" / "refs").mkdir()
    (tmp_path / "models--facebook--VGGT-tiny" / "refs" / "main").write_text("0" * 40)
    for name in ("config.json", "model.safetensors"):
        (snapshot / name).write_bytes((hf_folder / name).read_bytes())
    model = VGGT.from_pretrained("facebook/VGGT-tiny", cache_dir=tmp_path)
    torch.testing.assert_close(_depth(model), _depth(golden_vggt), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "nope.safetensors", "does not exist"),
        (lambda p: p, "no weights file"),
        (lambda p: (p / "notes.txt").write_text("x") and p / "notes.txt", "not a weights file"),
        (lambda p: (p / "bad.safetensors").write_bytes(b"garbage") and p / "bad.safetensors", "cannot read"),
        (lambda p: "not a checkpoint", "unknown checkpoint"),
    ],
)
def test_bad_sources(tmp_path, make, message):
    with pytest.raises(CheckpointError, match=message):
        VGGT.from_pretrained(make(tmp_path))


def test_bad_config_json(tmp_path, hf_folder):
    (tmp_path / "model.safetensors").write_bytes((hf_folder / "model.safetensors").read_bytes())
    (tmp_path / "config.json").write_text('{"embed_dim": 64, "colour": "red"}')
    with pytest.raises(CheckpointError, match="colour"):
        VGGT.from_pretrained(tmp_path)


def test_save_into_a_file_path_fails(tmp_path, golden_vggt):
    (tmp_path / "f").write_text("x")
    with pytest.raises(CheckpointError, match="not a folder"):
        golden_vggt.save_pretrained(tmp_path / "f")


def test_default_config_when_no_config_json():
    assert VGGTConfig() == VGGTConfig(img_size=518, patch_size=14, embed_dim=1024)


def test_matching_weights_fill_shared_modules_and_initialise_new_heads(tmp_path):
    from dataclasses import replace

    from vggtkit.weights import load_matching_weights

    small = replace(tiny_config(), enable_point=False, enable_track=False)
    source = VGGT(small)
    source.save_pretrained(tmp_path / "ckpt")
    torch.manual_seed(1)
    target = VGGT(replace(small, enable_point=True))
    fresh_point = {k: v.clone() for k, v in target.state_dict().items() if k.startswith("point_head.")}
    initialised, skipped = load_matching_weights(target, tmp_path / "ckpt")
    assert initialised == ["point_head"] and skipped == []
    state = target.state_dict()
    assert all(torch.equal(state[k], v) for k, v in source.state_dict().items())
    assert all(torch.equal(state[k], v) for k, v in fresh_point.items())
    # and back: a model without the head skips its tensors
    target.save_pretrained(tmp_path / "with_point")
    dropped = VGGT(small)
    assert load_matching_weights(dropped, tmp_path / "with_point") == ([], ["point_head"])
    assert all(torch.equal(v, state[k]) for k, v in dropped.state_dict().items())
    with pytest.raises(CheckpointError, match="mis-shaped"):
        load_matching_weights(VGGT(replace(small, dpt_features=small.dpt_features * 2)), tmp_path / "ckpt")
