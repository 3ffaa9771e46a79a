"""VGGT-Omega checkpoints load strictly through the family loader: official .pt files, safetensors, folders and
hub ids; the family and the released configuration are recognised from the keys."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from _omega_golden import OMEGA_DIR, golden_tensor, omega_config_json, omega_model_fields
from safetensors.torch import load_file, save_file

import vggtkit
from vggtkit import CheckpointError, VGGTConfig, VGGTOmega, VGGTOmegaConfig
from vggtkit.models import FAMILIES, detect_family
from vggtkit.weights import Checkpoint


def outputs(model) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return model(golden_tensor("images"))


def assert_same_model(model, omega_model) -> None:
    assert isinstance(model, VGGTOmega) and not model.training
    assert model.config == omega_model.config
    ours, ref = outputs(model), outputs(omega_model)
    for key in ("pose_enc", "depth", "text_alignment_embedding"):
        # The same weights in other memory (adopted from the file) may take other vector kernels: rounding only.
        torch.testing.assert_close(ours[key], ref[key], rtol=1e-6, atol=1e-6, msg=key)


@pytest.fixture(scope="module")
def state():
    return load_file(OMEGA_DIR / "weights.safetensors")


def test_fixture_folder_with_its_config_json(tmp_path, omega_model):
    for name in ("config.json", "weights.safetensors"):
        shutil.copy(OMEGA_DIR / name, tmp_path / name.replace("weights", "model"))
    assert_same_model(vggtkit.from_pretrained(tmp_path), omega_model)  # config.json with "model" and "fixed"
    assert_same_model(VGGTOmega.from_pretrained(tmp_path / "model.safetensors"), omega_model)


def test_official_pt_file(tmp_path, state, omega_model):
    torch.save(state, tmp_path / "vggt_omega_tiny.pt")  # a plain state dict, as the released files
    config = VGGTOmegaConfig(**omega_model_fields())
    assert_same_model(vggtkit.from_pretrained(tmp_path / "vggt_omega_tiny.pt", config=config), omega_model)


def test_a_pt_file_without_config_is_the_released_default(tmp_path, state):
    torch.save(state, tmp_path / "vggt_omega.pt")
    with pytest.raises(
        CheckpointError, match=r"mis-shaped key.*\(checkpoint \(.*\) vs model \(.*1024"
    ) as info:
        vggtkit.from_pretrained(tmp_path / "vggt_omega.pt")
    assert "aggregator." in str(info.value)


def test_default_configs_of_the_released_checkpoints():
    def checkpoint(keys):
        return Checkpoint(OMEGA_DIR, None, None, {k: torch.empty(0) for k in keys})

    assert VGGTOmega.default_config(checkpoint(["aggregator.inter_frame_blocks.0.x"])) == VGGTOmegaConfig()
    text = VGGTOmega.default_config(checkpoint(["text_alignment_head.language_token"]))
    assert text.enable_alignment and text.image_resolution == 256


def test_save_pretrained_round_trip(tmp_path, omega_model):
    omega_model.save_pretrained(tmp_path / "ckpt")
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text()) == omega_model.config.to_dict()
    assert_same_model(vggtkit.from_pretrained(tmp_path / "ckpt"), omega_model)


def test_hub_id_from_cache(tmp_path, omega_model):
    repo = tmp_path / "models--facebook--VGGT-Omega-tiny"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    (snapshot / "config.json").write_text(json.dumps(omega_config_json()))
    shutil.copy(OMEGA_DIR / "weights.safetensors", snapshot / "model.safetensors")
    assert_same_model(vggtkit.from_pretrained("facebook/VGGT-Omega-tiny", cache_dir=tmp_path), omega_model)


def test_missing_buffers_and_extra_keys_are_named(tmp_path, state):
    broken = dict(state)
    broken.pop("aggregator.rope_embed.periods")
    broken.pop("camera_head.trunk.1.attn.qkv.bias_mask")
    broken["dense_head.output_conv1.weight"] = torch.zeros(1)
    save_file(broken, tmp_path / "model.safetensors")
    shutil.copy(OMEGA_DIR / "config.json", tmp_path / "config.json")
    with pytest.raises(CheckpointError) as info:
        vggtkit.from_pretrained(tmp_path)
    text = str(info.value)
    for key in ("aggregator.rope_embed.periods", "camera_head.trunk.1.attn.qkv.bias_mask", "output_conv1"):
        assert key in text


def test_families_are_recognised_and_mixed_keys_named(tmp_path, state):
    assert detect_family(state) is FAMILIES["omega"]
    assert detect_family(["aggregator.global_blocks.0.norm1.weight"]) is FAMILIES["vggt"]
    with pytest.raises(CheckpointError, match="mixes the keys") as info:
        detect_family([*state, "aggregator.global_blocks.0.norm1.weight"])
    assert "'omega': ['aggregator.inter_frame_blocks." in str(info.value)
    assert "'vggt': ['aggregator.global_blocks.0.norm1.weight']" in str(info.value)
    save_file({"backbone.weight": torch.zeros(2)}, tmp_path / "foreign.safetensors")
    with pytest.raises(CheckpointError, match=r"inter_frame_blocks.*backbone\.weight"):
        vggtkit.from_pretrained(tmp_path / "foreign.safetensors")


def test_a_configuration_of_the_other_family_is_refused(tmp_path, state):
    torch.save(state, tmp_path / "model.pt")
    with pytest.raises(
        CheckpointError, match="omega checkpoint, but the configuration given is a VGGTConfig"
    ):
        vggtkit.from_pretrained(tmp_path / "model.pt", config=VGGTConfig())


def test_a_vggt_config_json_beside_omega_weights_is_refused(tmp_path):
    shutil.copy(OMEGA_DIR / "weights.safetensors", tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({"img_size": 518}))
    with pytest.raises(CheckpointError, match="unknown VGGTOmegaConfig field"):
        vggtkit.from_pretrained(tmp_path)


def test_one_weights_file_of_a_hub_repo(tmp_path, state, omega_model, monkeypatch):
    """facebook/VGGT-Omega holds several .pt files: ``owner/repo/file.pt`` picks one (here from the cache)."""
    repo = tmp_path / "models--facebook--VGGT-Omega"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    torch.save(state, snapshot / "vggt_omega_tiny.pt")
    torch.save({}, snapshot / "another.pt")
    config = VGGTOmegaConfig(**omega_model_fields())
    model = vggtkit.from_pretrained(
        "facebook/VGGT-Omega/vggt_omega_tiny.pt", config=config, cache_dir=tmp_path
    )
    assert_same_model(model, omega_model)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        CheckpointError, match=r"facebook/VGGT-Omega/vggt_omega_1b_512\.pt is not in the Hugging Face"
    ):
        vggtkit.from_pretrained("facebook/VGGT-Omega/vggt_omega_1b_512.pt", cache_dir=tmp_path)
