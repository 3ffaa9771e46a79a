"""`vggtkit train`: one command from config file to checkpoint; clear errors for bad settings."""

from __future__ import annotations

import json

import pytest

from vggtkit import VGGT
from vggtkit.cli import main

TINY = [
    "--set", "model.preset=test-tiny",
    "--set", "data.pool_size=2",
    "--set", "data.pool_frames=3",
    "--set", "data.image_size=[28,28]",
    "--set", "data.max_frames=3",
    "--set", "data.batch_size=1",
    "--set", "data.cache_dir=null",
    "--set", "optim.max_steps=3",
    "--set", "run.ckpt_every=2",
    "--set", "run.log_every=1",
    "--set", "run.num_threads=1",
]  # fmt: skip


def test_train_writes_metrics_config_and_loadable_checkpoints(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("loss:\n  variant: paper\n")
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), *TINY, "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "trained to step 3" in printed and "checkpoint:" in printed
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["loss"]["variant"] == "paper" and saved["optim"]["max_steps"] == 3
    assert (out / "metrics.csv").read_text().count("\n") == 4  # header + 3 steps
    latest = (out / "checkpoints" / "latest").read_text().strip()
    assert latest == "step_0000003"
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*")) == ["step_0000002", "step_0000003"]
    VGGT.from_pretrained(out / "checkpoints" / latest)
    # resuming a finished run reuses its saved config and does nothing more
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "optim.lr=-1"], "optim.lr"),
        (["--set", "optim.bogus=1"], "unknown key"),
        (["--config", "/nonexistent/c.yaml"], "does not exist"),
        (["--set", "optim.freeze=[nothing*]", "--set", "data.pool_size=1"], "matches no module"),
    ],
)
def test_bad_training_settings_exit_2_with_one_line(tmp_path, capsys, args, message):
    code = main(["train", *TINY, "--out", str(tmp_path / "run"), "--no-progress", *args])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]
