"""`vggtkit demo`: options reach the app, safe defaults, clear errors (the server itself is not started)."""

from __future__ import annotations

import os

import pytest

from vggtkit.cli import main


@pytest.fixture
def fake_launch(monkeypatch):
    """Replace launch_demo with a recorder (no server, returns at once)."""
    from vggtkit.app import gradio_app

    calls = []

    def record(demo, **kwargs):
        calls.append((demo, kwargs))
        return "http://127.0.0.1:0/"

    monkeypatch.setattr(gradio_app, "launch_demo", record)
    monkeypatch.setenv("GRADIO_TEMP_DIR", os.environ.get("GRADIO_TEMP_DIR", ""))  # restored after the test
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "True")
    return calls


def test_demo_starts_with_safe_defaults_and_the_example_preloaded(
    fake_launch, tiny_checkpoint, media, tmp_path, capsys
):
    folder = media["two"][0].parent
    code = main(
        [
            "demo",
            "--checkpoint",
            str(tiny_checkpoint),
            "--device",
            "cpu",
            "--example",
            str(folder),
            "--workdir",
            str(tmp_path / "work"),
            "--max-frames",
            "5",
            "--resolution",
            "56",
            "--no-examples",
        ]
    )
    assert code == 0
    [(demo, kwargs)] = fake_launch
    assert kwargs == {"host": "127.0.0.1", "port": None, "prevent_thread_lock": True}
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert os.environ["GRADIO_TEMP_DIR"] == str((tmp_path / "work").resolve() / "gradio")
    ctl = demo.vggtkit
    assert ctl.settings.max_frames == 5 and ctl.settings.workdir_root == (tmp_path / "work").resolve()
    assert [e.name for e in ctl.examples] == ["two"]  # the preloaded scene, no bundled table
    assert "model " in capsys.readouterr().out


def test_bad_checkpoint_is_a_one_line_error(fake_launch, tmp_path, capsys):
    code = main(
        [
            "demo",
            "--checkpoint",
            str(tmp_path / "missing.safetensors"),
            "--device",
            "cpu",
            "--workdir",
            str(tmp_path / "w"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("vggtkit demo: error: ") and "Traceback" not in err and not fake_launch


def test_example_needs_a_folder(fake_launch, tmp_path, monkeypatch, capsys):
    from vggtkit.app import controller

    monkeypatch.setattr(controller, "bundled_example_dirs", lambda: [])
    assert main(["demo", "--example", "--workdir", str(tmp_path / "w")]) == 2
    assert "no bundled example scene" in capsys.readouterr().err
    assert main(["demo", "--example", str(tmp_path / "nope")]) == 2
    assert "not a folder" in capsys.readouterr().err
