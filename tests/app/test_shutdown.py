"""`vggtkit demo` as a real server process, stopped by a signal: it exits cleanly and leaves no file behind.

Every server runs with its own TMPDIR, so "nothing left" means that folder is empty afterwards (the default work
folder, gradio's uploads and every session's results live under it). The servers start together (module fixture)
so that their start-ups overlap.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from _demo_helpers import RESOLUTION, free_port

from _browser import CHROMIUM, CHROMIUM_ARGS

START_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 60.0
pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="POSIX signals")


@dataclass
class Server:
    """One `vggtkit demo` process and where it may write."""

    proc: subprocess.Popen
    port: int
    tmpdir: Path
    pid_file: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int:
        """The demo's own process id (for a server started by a shell, the shell's background job)."""
        if self.pid_file is None:
            return self.proc.pid
        return int(self.pid_file.read_text())

    def wait_ready(self) -> None:
        end = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < end:
            assert self.proc.poll() is None, self.finish()
            try:
                if httpx.get(self.url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise AssertionError(f"the demo did not answer within {START_TIMEOUT_S:g} s")

    def stop(self, signum: int) -> int:
        """Send ``signum``; returns the exit code."""
        os.kill(self.pid, signum)
        return self.proc.wait(timeout=STOP_TIMEOUT_S)

    def finish(self) -> str:
        out, _ = self.proc.communicate(timeout=STOP_TIMEOUT_S)
        return out or ""

    def leftovers(self) -> list[str]:
        return sorted(str(p.relative_to(self.tmpdir)) for p in self.tmpdir.rglob("*"))


def _command(checkpoint: Path, port: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "vggtkit", "demo", "--checkpoint", str(checkpoint), "--device", "cpu",
        "--no-examples", "--port", str(port), "--resolution", str(RESOLUTION), *extra,
    ]  # fmt: skip


# A non-interactive shell starts background jobs with SIGINT ignored when job control is off; whether it is off
# depends on how the tests were launched, so the script says it explicitly.
IGNORE_SIGINT = "trap '' INT; "


def _spawn(root: Path, name: str, checkpoint: Path, *extra: str, background_shell: bool = False) -> Server:
    tmpdir = root / name / "tmp"
    tmpdir.mkdir(parents=True)
    env = {**os.environ, "TMPDIR": str(tmpdir), "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    env.pop("GRADIO_TEMP_DIR", None)
    port = free_port()
    command = _command(checkpoint, port, *extra)
    pid_file = None
    if background_shell:  # `demo &` in a script: the job starts with SIGINT ignored
        pid_file = root / name / "pid"
        script = f"{IGNORE_SIGINT}{subprocess.list2cmdline(command)} & echo $! > {pid_file}; wait"
        command = ["/bin/sh", "-c", script]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return Server(proc, port, tmpdir, pid_file)


def _stop_all(started: dict[str, Server]) -> None:
    for server in started.values():
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()


@pytest.fixture(scope="module")
def servers(tmp_path_factory, tiny_checkpoint):
    """Two servers starting together (more at once overload a 2-core machine): one stopped by SIGTERM, one
    started as a script's background job and stopped by SIGINT."""
    root = tmp_path_factory.mktemp("servers")
    started = {
        "sigterm": _spawn(root, "sigterm", tiny_checkpoint),
        "background": _spawn(root, "background", tiny_checkpoint, background_shell=True),
    }
    yield started
    _stop_all(started)


@pytest.fixture(scope="module")
def more_servers(tmp_path_factory, tiny_checkpoint):
    """Started after the first two: one with a given work folder, one stopped while it starts."""
    root = tmp_path_factory.mktemp("more_servers")
    started = {
        "workdir": _spawn(root, "workdir", tiny_checkpoint, "--workdir", str(root / "workdir" / "kept")),
        "starting": _spawn(root, "starting", tiny_checkpoint),
    }
    yield started
    _stop_all(started)


def _upload(server: Server, image: Path) -> Path:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        client.get("/")
        response = client.post(
            "/gradio_api/upload", files=[("files", (image.name, image.read_bytes(), "image/png"))]
        )
    assert response.status_code == 200, response.text
    return Path(response.json()[0])


def _reconstruct_in_a_browser(server: Server, images: list[Path]) -> None:
    """A person's visit: upload, reconstruct, previews, the COLMAP zip; leaves a session with every kind of result
    file (and pycolmap imported, which replaces the SIGTERM handler of a process that does not take it back)."""
    import re

    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(server.url)
        page.locator("#input-images input[type=file]").set_input_files([str(i) for i in images])
        log = page.locator("#log textarea")
        expect(log).to_have_value(re.compile("^Upload complete"), timeout=120_000)
        page.locator("#reconstruct-btn").click()
        expect(log).to_have_value(re.compile("^Reconstructed"), timeout=120_000)
        expect(page.locator("#depth-previews img")).to_have_count(2 * len(images), timeout=120_000)
        expect(page.locator("#download-colmap")).to_be_enabled(timeout=120_000)  # pycolmap has been used
        browser.close()


def test_sigterm_removes_every_upload_and_result(servers, media):
    server = servers["sigterm"]
    server.wait_ready()
    if CHROMIUM.exists():
        _reconstruct_in_a_browser(server, media["two"])
    else:
        _upload(server, media["two"][0])
    written = server.leftovers()
    assert any(p.endswith("predictions.npz") for p in written) or not CHROMIUM.exists()
    assert any("/gradio/" in p for p in written)
    assert server.stop(signal.SIGTERM) == 0
    assert "SIGTERM received; shutting down" in server.finish()
    assert server.leftovers() == []


def test_a_background_job_of_a_script_stops_on_sigint(servers, media):
    """A non-interactive shell starts `demo &` with SIGINT ignored; the demo still stops on it."""
    probe = subprocess.Popen(
        ["/bin/sh", "-c", f"{IGNORE_SIGINT}sleep 30 & echo $!; wait"], stdout=subprocess.PIPE, text=True
    )
    sleeper = int(probe.stdout.readline())
    ignored = int(Path(f"/proc/{sleeper}/status").read_text().split("SigIgn:")[1].split()[0], 16)
    os.kill(sleeper, signal.SIGKILL)
    probe.wait()
    assert ignored & (1 << (signal.SIGINT - 1))  # the premise: the shell did ignore SIGINT in its job

    server = servers["background"]
    server.wait_ready()
    assert _upload(server, media["three"][1]).is_file()
    os.kill(server.pid, signal.SIGINT)
    assert server.proc.wait(timeout=STOP_TIMEOUT_S) == 0  # the shell ends with its job
    assert "SIGINT received; shutting down" in server.finish()
    assert server.leftovers() == []


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium (scripts/setup.sh)"
)
def test_a_given_workdir_keeps_its_results(more_servers, media):
    """A folder given with --workdir stays with every session's results; gradio deletes its own raw uploads."""
    server = more_servers["workdir"]
    server.wait_ready()
    _reconstruct_in_a_browser(server, media["two"])
    assert server.stop(signal.SIGINT) == 0
    kept = server.tmpdir.parent / "kept"
    results = sorted(p.name for p in (kept / "sessions").rglob("*") if p.is_file())
    assert "predictions.npz" in results and "scene.glb" in results
    assert not [p for p in (kept / "gradio").rglob("*") if p.is_file() and p.suffix == ".png"]
    assert server.leftovers() == []  # nothing outside the given folder


def test_a_signal_during_start_up_leaves_nothing(more_servers):
    server = more_servers["starting"]
    end = time.monotonic() + START_TIMEOUT_S
    while not server.leftovers() and time.monotonic() < end:  # the work folder exists: start-up has begun
        time.sleep(0.05)
    assert server.leftovers(), "the demo never created its work folder"
    assert server.stop(signal.SIGTERM) == 0
    assert "SIGTERM received; shutting down" in server.finish()
    assert server.leftovers() == []


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_every_stop_signal_interrupts_the_main_thread(name):
    """In-process: each stop signal raises ShutdownRequested once (a second one only logs), SIGINT also when it was
    ignored before, and the previous handlers come back afterwards."""
    from vggtkit.app.server import ShutdownRequested, stop_on_signals

    signum = getattr(signal, name)
    before = signal.signal(signum, signal.SIG_IGN)  # how a script's background job starts
    try:
        with stop_on_signals() as stop:
            with pytest.raises(ShutdownRequested, match=f"{name} received"):
                os.kill(os.getpid(), signum)
                time.sleep(5)  # the handler interrupts this
            os.kill(os.getpid(), signum)  # during clean-up: logged, not raised
            time.sleep(0.05)
            assert stop.received == signum
        assert signal.getsignal(signum) == signal.SIG_IGN
    finally:
        signal.signal(signum, before)


def test_the_handlers_are_taken_back_from_a_native_library():
    """pycolmap's first import replaces the SIGTERM handler (its logging library's, which kills the process);
    installing ours again restores the clean shutdown."""
    code = (
        "import os, signal, time\n"
        "from vggtkit.app.server import ShutdownRequested, stop_on_signals\n"
        "with stop_on_signals() as stop:\n"
        "    import pycolmap\n"
        "    stop.install()\n"
        "    try:\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        time.sleep(5)\n"
        "    except ShutdownRequested as exc:\n"
        "        print('clean:', exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "clean: SIGTERM received" in done.stdout, done.stderr[-2000:]
