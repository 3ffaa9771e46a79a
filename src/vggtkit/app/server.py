"""Running the demo as a server process: stop on a signal, clean up periodically, shut down leaving nothing.

:func:`stop_on_signals` turns SIGTERM, SIGINT and SIGHUP into :class:`ShutdownRequested` in the main thread.
SIGINT is handled even when the process started with it ignored, which is how a non-interactive shell starts a
background job (``vggtkit demo &`` in a script): without that, Ctrl+C's signal would never stop it.

Nothing here imports gradio.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

__all__ = ["STOP_SIGNALS", "Periodic", "ShutdownRequested", "SignalStop", "stop_on_signals", "wait_while"]

logger = logging.getLogger(__name__)

STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name)
)


class ShutdownRequested(BaseException):
    """A stop signal arrived; raised in the main thread by :func:`stop_on_signals`.

    A BaseException, like KeyboardInterrupt, so that code catching errors does not swallow it.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"{signal.Signals(signum).name} received")


class SignalStop:
    """The state behind :func:`stop_on_signals`: raises once, then only logs; :meth:`disarm` before clean-up."""

    def __init__(self, signals: tuple[int, ...]) -> None:
        self.signals = signals
        self.received: int | None = None
        self.armed = True

    def install(self) -> None:
        """Install (again) the handlers. A native library can replace them behind Python's back: pycolmap's
        logging library takes SIGTERM when pycolmap is first imported, and then SIGTERM kills the process at once.
        Main thread only."""
        for signum in self.signals:
            signal.signal(signum, self.handle)

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None or not self.armed:
            logger.warning("%s received while shutting down; still cleaning up", signal.Signals(signum).name)
            return
        self.received = signum
        raise ShutdownRequested(signum)

    def disarm(self) -> None:
        """From now on signals no longer interrupt (the clean-up runs to its end)."""
        self.armed = False


@contextlib.contextmanager
def stop_on_signals(signals: tuple[int, ...] = STOP_SIGNALS) -> Iterator[SignalStop]:
    """Within the block, the first of ``signals`` raises :class:`ShutdownRequested` in the main thread; the
    previous handlers are restored at the end. Must be entered from the main thread."""
    stop = SignalStop(signals)
    previous = {signum: signal.getsignal(signum) for signum in signals}
    stop.install()
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def wait_while(
    running: Callable[[], bool], each: Callable[[], object] | None = None, poll_s: float = 0.5
) -> None:
    """Sleep in the main thread while ``running()`` (signals interrupt the sleep), calling ``each()`` every
    ``poll_s`` seconds (e.g. :meth:`SignalStop.install`)."""
    while running():
        if each is not None:
            each()
        time.sleep(poll_s)


class Periodic:
    """Calls ``job()`` every ``interval_s`` seconds in a daemon thread until :meth:`stop`; errors are logged."""

    def __init__(self, interval_s: float, job: Callable[[], object], name: str = "vggtkit-periodic") -> None:
        self.interval_s = interval_s
        self.job = job
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> Periodic:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.job()
            except Exception:
                logger.exception("periodic clean-up failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
