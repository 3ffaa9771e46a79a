"""The bundled tiny-synthetic model: loads offline, has the preset's architecture, and beats the trivial
baselines on held-out scenes where its README says it does."""

from __future__ import annotations

import pytest

from vggtkit import VGGT
from vggtkit.data.synthetic import load_heldout_set, render_scene
from vggtkit.eval import evaluate_methods, identity_constant_baseline, model_method
from vggtkit.models.vggt.config import preset_config
from vggtkit.weights import BUNDLED_MODELS, resolve_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


def test_bundled_weights_are_registered_small_and_match_the_preset():
    assert "tiny-synthetic" in BUNDLED_MODELS
    weights, _ = resolve_checkpoint("tiny-synthetic")
    assert weights.stat().st_size <= 25_000_000
    model = VGGT.from_pretrained("tiny-synthetic")
    assert model.config == preset_config("tiny-synthetic")
    assert model.camera_head is not None and model.depth_head is not None


@pytest.fixture(scope="module")
def scores():
    heldout = load_heldout_set()
    samples = [render_scene(heldout.config, s) for s in heldout.seeds[:3]]
    model = VGGT.from_pretrained("tiny-synthetic")
    results = evaluate_methods(
        {"model": model_method(model), "baseline": identity_constant_baseline}, samples
    )
    return results["model"]["summary"], results["baseline"]["summary"]


def test_shipped_depth_beats_constant_depth_on_held_out_scenes(scores):
    ours, base = scores
    # the full 24-scene table is in the asset README
    assert ours["depth_abs_rel"] < 0.75 * base["depth_abs_rel"]
    assert ours["depth_delta_1.25"] > base["depth_delta_1.25"]


def test_shipped_cameras_give_translation_directions_and_rotations_no_worse_than_identity(scores):
    ours, base = scores
    # identity poses have no translation direction (90 degrees)
    assert ours["trans_err_median"] < base["trans_err_median"] == pytest.approx(90.0)
    assert ours["rot_auc@30"] > base["rot_auc@30"] - 0.05
    assert ours["auc@30"] >= base["auc@30"]
