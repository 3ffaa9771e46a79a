"""`vggtkit evaluate`: tables and JSON for models and baselines on synthetic scenes and scene folders."""

from __future__ import annotations

import json

import pytest

from vggtkit import VGGT
from vggtkit.cli import main
from vggtkit.data.scene_folder import save_scene_folder
from vggtkit.data.synthetic import SyntheticSceneConfig, render_scene
from vggtkit.train.config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    config = TrainConfig.from_dict({"model": {"preset": "test-tiny"}}).model.build_config()
    return VGGT(config).save_pretrained(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def heldout_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("heldout") / "heldout.json"
    cfg = SyntheticSceneConfig(num_frames=3, image_size=(28, 28), supersample=1, num_tracks=0)
    path.write_text(json.dumps({"config": cfg.to_dict(), "seeds": [0, 1, 2]}))
    return path


def test_evaluate_synthetic_with_baselines_writes_json(tiny_checkpoint, heldout_file, tmp_path, capsys):
    out = tmp_path / "scores.json"
    args = ["evaluate", "--model", str(tiny_checkpoint), "--heldout", str(heldout_file), "--max-scenes", "2"]
    assert main([*args, "--baselines", "--untrained", "--json", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "AUC@30" in printed and "identity poses + constant depth" in printed
    results = json.loads(out.read_text())
    assert len(results) == 3
    for result in results.values():
        summary = result["summary"]
        assert summary["scenes"] == 2 and len(result["scenes"]) == 2
        assert 0 <= summary["auc@30"] <= 1 and summary["depth_abs_rel"] >= 0
    baseline = results["identity poses + constant depth"]["summary"]
    assert baseline["auc@30"] == 0  # identity relative poses have no translation direction
    assert main([*args, "--markdown"]) == 0
    assert "|---|" in capsys.readouterr().out


def test_evaluate_a_scene_folder(tiny_checkpoint, tmp_path, capsys):
    cfg = SyntheticSceneConfig(num_frames=2, image_size=(28, 28), supersample=1, num_tracks=0)
    folder = save_scene_folder(render_scene(cfg, 9), tmp_path / "scene")
    assert main(["evaluate", "--model", str(tiny_checkpoint), "--scene", str(folder), "--device", "cpu"]) == 0
    assert "1 scene(s)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--max-scenes", "0"], "--max-scenes"), (["--scene", "/nonexistent/scene"], "does not exist")],
)
def test_evaluate_errors_exit_2(tiny_checkpoint, capsys, extra, message):
    assert main(["evaluate", "--model", str(tiny_checkpoint), *extra]) == 2
    assert message in capsys.readouterr().err
