"""The bundled tiny-synthetic model: loads offline and beats the trivial baselines on held-out scenes."""

from __future__ import annotations

import pytest
import torch

from vggtkit import VGGT
from vggtkit.data.synthetic import load_heldout_set, render_scene
from vggtkit.eval import evaluate_methods, identity_constant_baseline, model_method
from vggtkit.train.config import MODEL_PRESETS, TrainConfig
from vggtkit.weights import BUNDLED_MODELS, resolve_checkpoint


def test_bundled_weights_are_registered_small_and_match_the_preset():
    assert "tiny-synthetic" in BUNDLED_MODELS
    weights, config = resolve_checkpoint("tiny-synthetic")
    assert weights.stat().st_size <= 25 * 1024 * 1024
    model = VGGT.from_pretrained("tiny-synthetic")
    preset = TrainConfig.from_dict({"model": {"preset": "tiny-synthetic"}}).model.build_config()
    assert model.config == preset
    assert "tiny-synthetic" in MODEL_PRESETS


@pytest.mark.parametrize("seed_index", [0])
def test_shipped_model_beats_the_baselines_on_held_out_scenes(seed_index):
    heldout = load_heldout_set()
    samples = [render_scene(heldout.config, s) for s in heldout.seeds[seed_index : seed_index + 3]]
    torch.manual_seed(0)
    model = VGGT.from_pretrained("tiny-synthetic")
    results = evaluate_methods(
        {"model": model_method(model), "baseline": identity_constant_baseline}, samples
    )
    ours, base = results["model"]["summary"], results["baseline"]["summary"]
    assert ours["depth_abs_rel"] < 0.75 * base["depth_abs_rel"]
    assert ours["auc@30"] > base["auc@30"]
    assert ours["rot_auc@30"] > base["rot_auc@30"]
