"""Training configuration: files, overrides and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vggtkit.models.vggt.config import PRESETS as MODEL_PRESETS
from vggtkit.train.config import TrainConfig, apply_overrides, load_train_config

REPO = Path(__file__).resolve().parents[2]


def test_shipped_config_files_load_and_build_their_models():
    paths = sorted((REPO / "configs").glob("*.yaml")) + sorted((REPO / "configs").glob("*.json"))
    assert len(paths) >= 3
    for path in paths:
        # fine-tuning configs leave data.path to the command line
        config = load_train_config(path, ["data.path=scenes"])
        config.model.build_config()
        if config.data.source == "scene_folder":
            with pytest.raises(ValueError, match="data.path"):
                load_train_config(path)


def test_yaml_and_json_files_and_overrides(tmp_path):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("optim:\n  lr: 3e-4\n  max_steps: 7\ndata:\n  image_size: [56, 70]\n")
    config = load_train_config(yaml_file, ["optim.lr=1e-3", "loss.variant=paper", "model.fields.depth=6"])
    assert config.optim.lr == pytest.approx(1e-3) and isinstance(config.optim.lr, float)
    assert config.optim.max_steps == 7 and config.data.image_size == (56, 70)
    assert config.loss.variant == "paper" and config.model.build_config().depth == 6
    json_file = tmp_path / "c.json"
    json_file.write_text(json.dumps(config.to_dict()))
    assert load_train_config(json_file) == config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optim.lrr=1"], "unknown key"),
        (["nope.lr=1"], "unknown section"),
        (["optim.lr"], "section.key=value"),
        (["optim.lr=abc"], "must be a number"),
        (["optim.amp=fp8"], "optim.amp"),
        (["data.min_frames=5", "data.max_frames=3"], "min_frames"),
        (["model.preset=huge"], "unknown model preset"),
        (["data.source=scene_folder"], "data.path"),
        (["loss.variant=x"], "loss variant"),
    ],
)
def test_bad_settings_name_the_problem(overrides, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(TrainConfig(), overrides)


def test_missing_or_broken_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_train_config(tmp_path / "absent.yaml")
    broken = tmp_path / "b.yaml"
    broken.write_text("optim: [unclosed\n")
    with pytest.raises(ValueError, match="cannot parse"):
        load_train_config(broken)


def test_presets_are_valid_model_configs():
    for name in MODEL_PRESETS:
        TrainConfig.from_dict({"model": {"preset": name}}).model.build_config()


def test_overrides_parse_as_json_without_pyyaml(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_yaml(name, *args, **kwargs):
        if name == "yaml":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_yaml)
    config = apply_overrides(TrainConfig(), ["data.zoom=null", "data.image_size=[56, 70]", "run.logger=csv"])
    assert config.data.zoom is None and config.data.image_size == (56, 70) and config.run.logger == "csv"
