"""The bundled tiny-synthetic model: loads offline and beats the trivial baselines on held-out scenes."""

from __future__ import annotations

import pytest

from vggtkit import VGGT
from vggtkit.data.synthetic import load_heldout_set, render_scene
from vggtkit.eval import evaluate_methods, identity_constant_baseline, model_method
from vggtkit.models.vggt.config import PRESETS as MODEL_PRESETS
from vggtkit.train.config import TrainConfig
from vggtkit.weights import BUNDLED_MODELS, resolve_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


def test_bundled_weights_are_registered_small_and_match_the_preset():
    assert "tiny-synthetic" in BUNDLED_MODELS
    weights, config = resolve_checkpoint("tiny-synthetic")
    assert weights.stat().st_size <= 25 * 1024 * 1024
    model = VGGT.from_pretrained("tiny-synthetic")
    preset = TrainConfig.from_dict({"model": {"preset": "tiny-synthetic"}}).model.build_config()
    assert model.config == preset
    assert "tiny-synthetic" in MODEL_PRESETS


def test_shipped_model_beats_the_trivial_baselines_on_held_out_scenes():
    heldout = load_heldout_set()
    samples = [render_scene(heldout.config, s) for s in heldout.seeds[:3]]
    model = VGGT.from_pretrained("tiny-synthetic")
    results = evaluate_methods(
        {"model": model_method(model), "baseline": identity_constant_baseline}, samples
    )
    ours, base = results["model"]["summary"], results["baseline"]["summary"]
    # depth: well below constant depth (the full 24-scene table is in the asset README)
    assert ours["depth_abs_rel"] < 0.75 * base["depth_abs_rel"]
    assert ours["depth_delta_1.25"] > base["depth_delta_1.25"]
    # cameras: translation directions exist (identity poses score 90 degrees), rotations no worse than identity
    assert ours["trans_err_median"] < base["trans_err_median"] == pytest.approx(90.0)
    assert ours["rot_auc@30"] > base["rot_auc@30"] - 0.05
    assert ours["auc@30"] >= base["auc@30"]
