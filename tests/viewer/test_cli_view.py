"""`vggtkit view`: every user mistake is one line and exit code 2; the server stops cleanly on Ctrl+C and SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from vggtkit.cli import main

pytest.importorskip("viser")


def _error_line(capsys, argv: list[str]) -> str:
    """Run the CLI; check exit code 2, no traceback and exactly one line on stderr, which it returns."""
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("vggtkit view: error: "), err
    return lines[0]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: [str(d / "missing")], "does not exist"),
        (lambda d: [str(d)], "no predictions.npz in"),
        (lambda d: [str(_text(d / "predictions.npz"))], "is not an npz file"),
        (lambda d: [str(_truncated(d / "predictions.npz"))], "is damaged"),
        (lambda d: [str(_npz_of_something_else(d / "other.npz"))], "not a VGGT predictions file"),
        (lambda d: [_run(d), "--max-points", "-5"], "--max-points -5"),
        (lambda d: [_run(d), "--conf-threshold", "120"], "--conf-threshold 120"),
        (lambda d: [_run(d), "--port", "70000"], "--port 70000"),
        (lambda d: [_run(d), "--save-dir", str(_text(d / "file.txt"))], "is a file"),
        (lambda d: [_run(d), "--sky-model", "missing.onnx"], "sky model not found"),
        (lambda d: [_run(d), "--host", "no-such-host.invalid"], "cannot listen on host"),
    ],
    ids=[
        "missing-folder",
        "no-npz-in-folder",
        "text-file",
        "truncated-npz",
        "other-npz",
        "negative-budget",
        "percentile",
        "port-range",
        "save-dir-file",
        "sky-model",
        "host",
    ],
)
def test_user_mistakes(capsys, tmp_path, setup, message):
    assert message in _error_line(capsys, ["view", *setup(tmp_path)])


def test_a_busy_port(capsys, run_folder, free_port):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", free_port))
        busy.listen()
        line = _error_line(capsys, ["view", str(run_folder), "--port", str(free_port)])
    assert f"port {free_port} on 127.0.0.1 is busy" in line


def test_serves_prints_the_url_and_stops_cleanly_on_ctrl_c_and_sigterm(run_folder):
    """Two servers at once (one per signal), to pay the interpreter start-up once."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2] / "src"), PYTHONUNBUFFERED="1")
    procs = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        argv = [sys.executable, "-m", "vggtkit", "view", str(run_folder), "--port", "0"]
        procs[sig] = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
    try:
        for sig, proc in procs.items():
            first = proc.stdout.readline()
            match = re.match(
                r"vggtkit view: (http://127\.0\.0\.1:(\d+)) \(3 frames at 8x6, 144 pixels, predicted cameras\)",
                first,
            )
            assert match, first
            with urllib.request.urlopen(match[1], timeout=10) as response:
                assert response.status == 200
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=20)
            assert proc.returncode == 0, (sig, err)
            assert out.strip().splitlines()[-1] == "vggtkit view: stopped"
            assert "Traceback" not in err and "(viser)" not in out + err
            with socket.socket() as again:
                again.bind(("127.0.0.1", int(match[2])))  # the port is free again
    finally:
        for proc in procs.values():
            proc.kill()


def _text(path: Path) -> Path:
    path.write_text("not an archive\n")
    return path


def _truncated(path: Path) -> Path:
    from _viewer_scenes import make_reconstruction

    make_reconstruction().save_npz(path)
    path.write_bytes(path.read_bytes()[:3000])
    return path.parent


def _npz_of_something_else(path: Path) -> Path:
    import numpy as np

    np.savez(path, weights=np.zeros(4))
    return path


def _run(folder: Path) -> str:
    from _viewer_scenes import make_reconstruction

    make_reconstruction().save_npz(folder / "predictions.npz")
    return str(folder)


def test_view_reconstruction_serves_a_fresh_run_with_the_exports_settings(capsys, monkeypatch, tmp_path, rec):
    """What `vggtkit reconstruct --view` calls; stopped here by a SIGINT sent once its handler is in place."""
    import threading

    import vggtkit.viewer
    from vggtkit.cli.view import view_reconstruction
    from vggtkit.export import ExportOptions

    served = []
    real_serve = vggtkit.viewer.serve
    monkeypatch.setattr(
        vggtkit.viewer, "serve", lambda *a, **k: served.append(real_serve(*a, **k)) or served[-1]
    )
    default_handler = signal.getsignal(signal.SIGINT)

    def interrupt_when_listening():
        while signal.getsignal(signal.SIGINT) is default_handler or not served:
            threading.Event().wait(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_listening, daemon=True).start()
    options = ExportOptions(conf_threshold=25, frame=1, mask_black=True)
    assert view_reconstruction(rec, tmp_path, options) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("vggtkit view: http://127.0.0.1:") and out[-1] == "vggtkit view: stopped"
    viewer = served[0]
    assert viewer.settings.conf_threshold == 25 and viewer.settings.frame == 1 and viewer.settings.mask_black
    assert viewer.source.folder == tmp_path
    assert signal.getsignal(signal.SIGINT) is default_handler  # the handlers are given back
