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
    assert ctl.runner.resolution == 56 and not ctl.settings.share_results
    assert ctl.settings.expire_hours == 24
    assert "at 56 px" in capsys.readouterr().out
    assert (tmp_path / "work" / "examples" / "two").is_dir()  # a given work folder is kept


def test_resolution_defaults_to_the_checkpoints_own(fake_launch, tmp_path):
    """The golden checkpoint was built for 518-pixel inputs; a test-tiny model for 56."""
    from vggtkit import VGGT
    from vggtkit.models.vggt.config import preset_config

    small = tmp_path / "small"
    VGGT(preset_config("test-tiny")).save_pretrained(small)
    argv = [
        "demo",
        "--checkpoint",
        str(small),
        "--device",
        "cpu",
        "--no-examples",
        "--workdir",
        str(tmp_path),
    ]
    assert main(argv) == 0
    assert fake_launch[-1][0].vggtkit.runner.resolution == 56
    assert main([*argv, "--resolution", "112", "--share-results", "--expire-hours", "0.5"]) == 0
    ctl = fake_launch[-1][0].vggtkit
    assert ctl.runner.resolution == 112 and ctl.settings.share_results and ctl.settings.expire_hours == 0.5


def test_the_temporary_work_folder_is_removed_after_a_start_up_error(
    fake_launch, tmp_path, monkeypatch, capsys
):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert main(["demo", "--checkpoint", str(tmp_path / "missing"), "--device", "cpu"]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_bad_limits_name_the_option(fake_launch, tiny_checkpoint, tmp_path, capsys):
    argv = ["demo", "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--workdir", str(tmp_path)]
    assert main([*argv, "--expire-hours", "0"]) == 2
    assert "--expire-hours must be a number > 0" in capsys.readouterr().err
    assert main([*argv, "--sky-model", str(tmp_path / "nope.onnx")]) == 2
    assert "--sky-model not found" in capsys.readouterr().err
    assert main([*argv, "--resolution", "100"]) == 2
    assert "resolution must be a positive multiple of 14" in capsys.readouterr().err


def test_a_port_in_use_is_a_one_line_error(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    import socket

    monkeypatch.setenv("GRADIO_TEMP_DIR", os.environ.get("GRADIO_TEMP_DIR", ""))  # restored after the test
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = [
            "demo",
            "--checkpoint",
            str(tiny_checkpoint),
            "--device",
            "cpu",
            "--no-examples",
            "--port",
            str(port),
        ]
        assert main([*argv, "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"vggtkit demo: error: cannot listen on 127.0.0.1:{port}") and "Traceback" not in err
    )


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
