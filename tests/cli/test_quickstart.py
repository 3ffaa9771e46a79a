"""`vggtkit quickstart` (the README's main job): offline reconstruction of the bundled example, scored."""

from __future__ import annotations

import re

import pytest

from vggtkit.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def test_quickstart_reconstructs_the_example_scores_it_and_exports(tmp_path, capsys):
    out = tmp_path / "qs"
    assert main(["quickstart", "--out", str(out), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "tiny-synthetic" in text and "5 views" in text
    trans_model, _, trans_identity = map(
        float, re.search(r"mean translation-direction error\s+(\S+)\s+(\S+)\s+(\S+)", text).groups()
    )
    rel_model, rel_constant = map(float, re.search(r"AbsRel\s+(\S+)\s+(\S+)", text).groups())
    assert rel_model < rel_constant
    assert trans_model < trans_identity == 90.0  # identity poses have no translation direction
    # the model alone, after bundle adjustment, identity poses; the line before says what refinement did
    assert re.search(r"model\s+model \+ BA\s+identity poses", text)
    rot_model, rot_ba, rot_identity = map(
        float, re.search(r"mean rotation error \(deg\)\s+(\S+)\s+(\S+)\s+(\S+)", text).groups()
    )
    auc_model, auc_ba, _ = map(float, re.search(r"AUC@30 \(%\)\s+(\S+)\s+(\S+)\s+(\S+)", text).groups())
    # The example's 448 px images give bundle adjustment enough matches to fix the model's weak cameras.
    assert "bundle adjustment refined 5 of 5 cameras at the images' 448x448 px" in text
    assert rot_ba < 1.0 < rot_model and rot_ba < rot_identity and auc_ba > 90 > auc_model
    for name in ("scene.glb", "points.ply", "cameras.json", "predictions.npz", "predictions_refined.npz"):
        assert (out / name).is_file(), name
    assert (out / "sparse" / "0").is_dir() and (out / "refine.json").is_file()


def test_quickstart_rejects_a_scene_without_depth(tmp_path, capsys):
    (tmp_path / "s" / "images").mkdir(parents=True)
    assert main(["quickstart", "--scene", str(tmp_path / "s"), "--out", str(tmp_path / "o")]) == 2
    assert "cameras.json" in capsys.readouterr().err


def test_quickstart_demo_option_starts_the_demo_on_the_example(monkeypatch):
    import vggtkit.cli

    calls = []
    real_main = vggtkit.cli.main
    monkeypatch.setattr(vggtkit.cli, "main", lambda argv: calls.append(list(argv)) or 0)
    assert real_main(["quickstart", "--demo", "--device", "cpu"]) == 0
    assert calls == [["demo", "--example", "--device", "cpu", "--dtype", "float32"]]
