"""What the demo's buttons do, without gradio: uploads, reconstruction, view changes, downloads, clearing.

Every method takes and returns plain values (the session state is a small dict the UI keeps on the server
side), turns user mistakes into one-line messages, and never lets a traceback reach the page.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vggtkit.app.access import FilePolicy, OwnerKeys
from vggtkit.app.engine import ModelRunner
from vggtkit.app.ingest import UploadError, UploadLimits, ingest_uploads
from vggtkit.app.session import ReconstructionCache, Run, SessionStore
from vggtkit.app.settings import DemoSettings, ViewSettings
from vggtkit.io.paths import IMAGE_SUFFIXES, natural_key
from vggtkit.pipeline import Reconstruction

__all__ = [
    "PROMPT",
    "STOPPING",
    "Cancelled",
    "DemoController",
    "Example",
    "RunOutcome",
    "UploadOutcome",
    "ViewOutcome",
    "bundled_example_dirs",
]

logger = logging.getLogger(__name__)

PROMPT = "Upload a video or images, then click 'Reconstruct'."
NEED_RUN = "Please click the Reconstruct button first."
STOPPING = "The demo is shutting down; nothing more is saved."
Progress = Callable[[str, int, int], None]
State = dict | None


class Cancelled(BaseException):
    """The demo is shutting down: the operation stops where it is and writes nothing more.

    A BaseException so that the handlers that turn errors into messages do not catch it.
    """


def _operation(on_cancel: Callable[[], Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Count a controller method as running (shutdown waits for it) and answer ``on_cancel()`` once the demo
    stops."""

    def wrap(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def run(self: DemoController, *args: Any, **kwargs: Any) -> Any:
            try:
                with self._running():
                    return method(self, *args, **kwargs)
            except Cancelled:
                return on_cancel()

        return run

    return wrap


@dataclass(frozen=True)
class Example:
    """A bundled example scene: its name and frame files (copied into the app's own folder)."""

    name: str
    frames: tuple[Path, ...]


@dataclass
class UploadOutcome:
    state: dict
    frames: list[str]
    gallery: list[tuple[str, str]]
    message: str
    ok: bool
    files: list[str] = field(default_factory=list)  # for examples: the example's frame files


@dataclass
class ViewOutcome:
    glb: Path | None
    ply: Path | None
    message: str
    points: int | None = None
    cached: bool = False


@dataclass
class RunOutcome:
    ok: bool
    message: str
    view: ViewOutcome | None = None
    npz: Path | None = None
    frames: list[str] = field(default_factory=list)


def bundled_example_dirs(root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Folders of the example scenes shipped in ``vggtkit/assets/example`` (or ``root``); empty when none.

    The folder is one scene when it holds images (in ``images/``, the scene-folder layout, or directly);
    otherwise each of its sub-folders that does is a scene.
    """
    root = Path(root) if root is not None else Path(__file__).resolve().parent.parent / "assets" / "example"
    if not root.is_dir():
        return []
    if _scene_frames(root):
        return [root]
    subfolders = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name))
    return [p for p in subfolders if _scene_frames(p)]


def _scene_frames(folder: Path) -> list[Path]:
    """A scene's frames: the images in ``folder/images`` (scene-folder layout), else those in ``folder``."""
    for candidate in (folder / "images", folder):
        if candidate.is_dir():
            files = [p for p in candidate.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
            if files:
                return sorted(files, key=lambda p: natural_key(p.name))
    return []


class DemoController:
    """The demo's behaviour; one instance serves every session.

    Browsers are told apart by owner keys (:mod:`vggtkit.app.access`); methods that may start a session take the
    caller's ``owner`` (None: one key for every caller of this process that is not a browser, e.g. a script).

    Args:
        settings: limits, folders, sky model.
        runner: the shared model.
        example_dirs: folders of example scenes; their images are copied under ``settings.examples_dir``.
        policy: the web server's file access rules; with it, an upload may only use files this browser uploaded
            (or the examples), and the files of a refused upload are deleted.
    """

    def __init__(
        self,
        settings: DemoSettings,
        runner: ModelRunner,
        example_dirs: Sequence[str | os.PathLike[str]] = (),
        policy: FilePolicy | None = None,
    ):
        self.settings = settings
        self.runner = runner
        self.policy = policy
        settings.root.mkdir(parents=True, exist_ok=True)
        self.store = SessionStore(settings.sessions_dir)
        self.cache = ReconstructionCache(capacity=max(4, 2 * settings.concurrency))
        self.limits = UploadLimits(settings.max_frames, settings.max_upload_bytes)
        self.examples = self._copy_examples(example_dirs)
        self.local_owner = OwnerKeys().throwaway()
        self._busy: set[Path] = set()
        self._busy_lock = threading.Lock()
        self._stopping = threading.Event()
        self._active = 0
        self._idle = threading.Condition()

    # ------------------------------------------------------------------------------------------ examples
    def _copy_examples(self, dirs: Sequence[str | os.PathLike[str]]) -> list[Example]:
        examples: list[Example] = []
        names: set[str] = set()
        for folder in dirs:
            folder = Path(folder).expanduser()
            frames = self._example_frames(folder)
            name = folder.name if folder.name != "images" else folder.parent.name
            base, k = name, 1
            while name in names:
                name, k = f"{base}_{k}", k + 1
            names.add(name)
            examples.append(
                Example(name, tuple(self._copy_frames(frames, self.settings.examples_dir / name)))
            )
        return examples

    def _example_frames(self, folder: Path) -> list[Path]:
        frames = _scene_frames(folder)
        if not frames:
            raise ValueError(
                f"example folder '{folder}' holds no images ({', '.join(IMAGE_SUFFIXES[:4])}, ...)"
            )
        limit = self.settings.max_frames
        if len(frames) > limit:
            logger.warning(
                "example %s has %d frames, over max_frames=%d; keeping the first %d",
                folder,
                len(frames),
                limit,
                limit,
            )
        return frames[:limit]

    @staticmethod
    def _copy_frames(frames: Sequence[Path], target: Path) -> list[Path]:
        target.mkdir(parents=True, exist_ok=True)
        copies = []
        for frame in frames:
            dest = target / frame.name
            if not dest.is_file() or dest.stat().st_size != frame.stat().st_size:
                shutil.copyfile(frame, dest)
            copies.append(dest)
        return copies

    # ------------------------------------------------------------------------------------------ lifetime
    @contextlib.contextmanager
    def _running(self) -> Iterator[None]:
        with self._idle:
            if self._stopping.is_set():
                raise Cancelled
            self._active += 1
        try:
            yield
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    def _check_running(self) -> None:
        if self._stopping.is_set():
            raise Cancelled

    def _cancellable(self, progress: Progress | None) -> Progress:
        """``progress`` that first stops the operation when the demo is shutting down."""

        def report(stage: str, done: int, total: int) -> None:
            self._check_running()
            if progress is not None:
                progress(stage, done, total)
                self._check_running()  # the stop may have come while the page was being updated

        return report

    def stop(self) -> None:
        """Refuse new work and stop running operations at their next step (they write nothing more)."""
        self._stopping.set()

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for running operations to end; True when none is left.

        A reconstruction inside the model's forward pass stops only when that pass ends.
        """
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)

    def expire_sessions(self, now: float | None = None) -> list[Path]:
        """Delete the sessions unused for longer than ``settings.expire_hours`` (never one in use)."""
        with self._busy_lock:
            busy = set(self._busy)
        removed = self.store.expire(self.settings.expire_seconds, keep=busy, now=now)
        for path in removed:
            self.cache.drop_under(path)
        return removed

    # ------------------------------------------------------------------------------------------ state
    def _session(self, state: State, owner: str | None) -> Path:
        """The state's session when it belongs to ``owner`` and still exists, else a new one."""
        owner = owner or self.local_owner
        if state and state.get("session") and self.store.owner_of(state["session"]) == owner:
            try:
                session = self.store.check(state["session"])
                self.store.touch(session)
                return session
            except ValueError:
                pass
        return self.store.create_session(owner)

    def _run(self, state: State) -> Run | None:
        if not state or not state.get("run"):
            return None
        try:
            run = Run(self.store.check(state["run"]))
        except ValueError:
            return None
        self.store.touch(run.path)
        return run

    def _drop_run(self, run: Run | None) -> None:
        """Delete a run's folder unless a reconstruction is using it."""
        if run is None:
            return
        with self._busy_lock:
            busy = run.path in self._busy
        if not busy:
            self.cache.drop_under(run.path)
            self.store.remove(run.path)

    @_operation(lambda: None)
    def release(self, state: State) -> None:
        """Delete a session's folder (gradio calls this when the browser session ends)."""
        if state and state.get("session"):
            try:
                path = self.store.check(state["session"])
            except ValueError:
                return
            self.cache.drop_under(path)
            self.store.remove(path)

    @_operation(lambda: {"session": None, "run": None})
    def clear(self, state: State, owner: str | None = None) -> dict:
        """Forget the current upload and its results; the session folder stays."""
        self._drop_run(self._run(state))
        return {"session": str(self._session(state, owner)), "run": None}

    # ------------------------------------------------------------------------------------------ uploads
    @_operation(lambda: UploadOutcome({}, [], [], STOPPING, ok=False))
    def upload(
        self,
        state: State,
        video: str | None,
        images: Sequence[str] | None,
        fps: float,
        progress: Progress | None = None,
        owner: str | None = None,
    ) -> UploadOutcome:
        """Check and copy uploaded images and sample an uploaded video into a fresh run folder (which replaces
        the previous one once the upload is accepted)."""
        owner = owner or self.local_owner
        session = self._session(state, owner)
        if not video and not images:
            self._drop_run(self._run(state))
            return UploadOutcome({"session": str(session), "run": None}, [], [], PROMPT, ok=True)
        files = [str(p) for p in (*(images or []), *([video] if video else []))]
        run = self.store.create_run(session)
        try:
            self._check_sources(files, owner)
            frames = ingest_uploads(
                run.images_dir, images, video, fps, self.limits, self._cancellable(progress)
            )
        except UploadError as exc:
            return self._failed_upload(state, run, files, owner, f"Upload problem: {exc}")
        except Exception as exc:  # never a traceback on the page
            logger.exception("upload failed")
            message = f"Upload failed with an internal error ({type(exc).__name__}: {exc})."
            return self._failed_upload(state, run, files, owner, message)
        except BaseException:
            self.store.remove(run.path)
            raise
        self._drop_run(self._run(state))
        gallery = [(str(run.images_dir / name), name) for name in frames]
        message = f"Upload complete: {len(frames)} frame(s). Click 'Reconstruct' to begin 3D processing."
        new_state = {"session": str(session), "run": str(run.path), "fps": fps}
        return UploadOutcome(new_state, frames, gallery, message, ok=True)

    def _check_sources(self, files: Sequence[str], owner: str) -> None:
        """Every file must be this browser's upload or an example (with a file policy; else anything goes)."""
        if self.policy is None:
            return
        examples = self.settings.examples_dir.resolve()
        for name in files:
            path = Path(name).resolve()
            if examples not in path.parents and not self.policy.uploaded_by(path, owner):
                raise UploadError(f"'{path.name}' was not uploaded from this browser; upload the file again")

    def _failed_upload(
        self, state: State, run: Run, files: Sequence[str], owner: str, message: str
    ) -> UploadOutcome:
        """A refused upload resets the page: the new run, the previous one and the uploaded files are deleted."""
        self.store.remove(run.path)
        self._drop_run(self._run(state))
        if self.policy is not None:
            self.policy.delete_uploads(files, owner)
        return UploadOutcome({"session": str(run.path.parent), "run": None}, [], [], message, ok=False)

    def load_example(
        self, state: State, index: int, fps: float = 1.0, owner: str | None = None
    ) -> UploadOutcome:
        """Load example ``index`` as if its images had been uploaded."""
        if not 0 <= index < len(self.examples):
            return UploadOutcome(state or {}, [], [], f"No example {index}.", ok=False)
        example = self.examples[index]
        outcome = self.upload(state, None, [str(p) for p in example.frames], fps, owner=owner)
        outcome.files = [str(p) for p in example.frames]
        if outcome.ok:
            outcome.message = f"Example '{example.name}' loaded: {len(outcome.frames)} frame(s)."
        return outcome

    # ------------------------------------------------------------------------------------------ model
    @_operation(lambda: RunOutcome(False, STOPPING))
    def reconstruct(
        self,
        state: State,
        reference: int | None,
        mode: str | None,
        view: ViewSettings,
        progress: Progress | None = None,
        refine: bool = False,
    ) -> RunOutcome:
        """Run the model on the current upload (``mode``: the preprocessing, None for the model family's
        default; then, with ``refine``, refine its cameras by bundle adjustment), save ``predictions.npz``, build
        the first view."""
        run = self._run(state)
        frames = run.frames() if run is not None else []
        if run is None or not frames:
            return RunOutcome(False, "Nothing to reconstruct: upload a video or images first.")
        reference = int(reference or 0)
        if not 0 <= reference < len(frames):
            reference = 0
        with self._busy_lock:
            self._busy.add(run.path)
        try:
            rec, summary = self._predict(run, reference, mode, progress, refine)
        except ValueError as exc:
            return RunOutcome(False, f"Reconstruction failed: {exc}")
        except Exception as exc:
            logger.exception("reconstruction failed")
            return RunOutcome(
                False,
                f"Reconstruction failed with an internal error ({type(exc).__name__}: {exc}); "
                "the server log has the details.",
            )
        finally:
            with self._busy_lock:
                self._busy.discard(run.path)
        if view.frame is not None and view.frame >= rec.num_frames:
            view = dataclasses.replace(view, frame=None)
        shown = self._safe_view(run, rec, view)
        return RunOutcome(True, f"{summary}\n{shown.message}", shown, run.npz_path, list(rec.names))

    def _predict(
        self, run: Run, reference: int, mode: str | None, progress: Progress | None, refine: bool = False
    ) -> tuple[Reconstruction, str]:
        """Run the model (and the refinement), then save the predictions and the run's report (unless the demo
        stopped meanwhile)."""
        rec, report = self.runner.run(
            run.images_dir, reference=reference, mode=mode, progress=self._cancellable(progress)
        )
        self._check_running()
        summary = f"{report.summary()} Reference frame: {reference} ({rec.names[reference]})."
        run.drop_refined_colmap_zip()
        if refine:
            rec, refined = self._refine(run, rec, progress)
            summary = f"{summary}\n{refined}"
        rec.save_npz(run.npz_path)
        self.cache.put(run.npz_path, rec)
        run.write_summary(summary)
        return rec, summary

    def _refine(self, run: Run, rec: Reconstruction, progress: Progress | None) -> tuple[Reconstruction, str]:
        """The reconstruction with its cameras refined against the images (``refine.json`` in the run folder),
        or the model's own when refinement is not possible; and a line saying which."""
        from vggtkit.refine import REPORT_NAME
        from vggtkit.refine import refine as refine_cameras

        start = time.perf_counter()
        result = refine_cameras(rec, progress=self._cancellable(progress))
        self._check_running()
        result.report.save(run.path / REPORT_NAME)
        report = result.report
        if report.status == "feed-forward":
            return (
                rec,
                f"Bundle adjustment not possible ({'; '.join(report.warnings)}): the model's cameras are shown.",
            )
        run.build_refined_colmap_zip(result)
        refined = sum(f.status != "kept" for f in report.frames)
        return result.reconstruction, (
            f"Refined {refined} of {rec.num_frames} cameras by bundle adjustment in "
            f"{time.perf_counter() - start:.1f} s ({report.num_tracks} tracks, mean length "
            f"{report.mean_track_length:.1f})."
        )

    # ------------------------------------------------------------------------------------------ views
    def _keep(self, run: Run, rec: Reconstruction, view: ViewSettings) -> np.ndarray | None:
        if not view.mask_sky:
            return None
        if self.settings.sky_model is None:
            raise ValueError("sky filtering is off: this demo was started without a sky-segmentation model")
        return run.sky_keep(rec, self.settings.sky_model)

    def _view(self, run: Run, rec: Reconstruction, view: ViewSettings) -> ViewOutcome:
        start = time.perf_counter()
        if view.frame is not None and view.frame >= rec.num_frames:
            raise ValueError(
                f"frame {view.frame} does not exist: the reconstruction has frames 0..{rec.num_frames - 1}"
            )
        if view.branch == "pointmap" and rec.world_points is None:
            view = dataclasses.replace(view, branch="depth")
        keep = self._keep(run, rec, view)
        glb, built = run.build_glb(rec, view, keep)
        ply = run.build_ply(rec, view, keep)
        points = glb.meta.get("points")
        took = f"built in {time.perf_counter() - start:.2f} s" if built else "from the cache"
        message = f"Showing {points} points of {_describe(view, rec)}; view {took}."
        return ViewOutcome(glb.path, ply.path, message, points, cached=not built)

    @_operation(lambda: ViewOutcome(None, None, STOPPING))
    def view(self, state: State, view: ViewSettings) -> ViewOutcome:
        """The GLB and PLY for new view settings, from the saved predictions (the model does not run)."""
        run = self._run(state)
        if run is None or not run.has_predictions():
            return ViewOutcome(None, None, NEED_RUN)
        try:
            rec = self.cache.get(run.npz_path)
        except ValueError as exc:
            return ViewOutcome(None, None, f"Cannot read this session's predictions: {exc}")
        shown = self._safe_view(run, rec, view)
        summary = run.summary()
        if summary:
            shown.message = f"{summary}\n{shown.message}"
        return shown

    def _safe_view(self, run: Run, rec: Reconstruction, view: ViewSettings) -> ViewOutcome:
        try:
            return self._view(run, rec, view)
        except ValueError as exc:
            return ViewOutcome(None, None, f"Cannot show this view: {exc}")
        except Exception as exc:
            logger.exception("view update failed")
            return ViewOutcome(
                None, None, f"Cannot show this view: internal error ({type(exc).__name__}: {exc})."
            )

    def cached_colmap_zip(self, state: State, view: ViewSettings) -> Path | None:
        """The COLMAP zip for ``view`` if it is already built (never builds)."""
        run = self._run(state)
        if run is None:
            return None
        target = run.refined_colmap_file if run.refined_colmap_file.exists else run.colmap_file(view)
        return target.path if target.exists else None

    @_operation(lambda: None)
    def colmap_zip(self, state: State, view: ViewSettings) -> Path | None:
        """``colmap.zip`` (images + sparse/0): after bundle adjustment the refined model, whose observations are
        the matched keypoints; otherwise built for the view's confidence and masks. None before a run or on
        error."""
        run = self._run(state)
        if run is None or not run.has_predictions():
            return None
        if run.refined_colmap_file.exists:
            return run.refined_colmap_file.path
        try:
            rec = self.cache.get(run.npz_path)
            return run.build_colmap_zip(rec, view, self._keep(run, rec, view)).path
        except Exception:
            logger.exception("COLMAP export failed")
            return None

    @_operation(list)
    def previews(self, state: State) -> list[tuple[str, str]]:
        """Depth and confidence previews of the current run, ``[(png, caption), ...]`` (written on first use;
        empty before a reconstruction or on error)."""
        run = self._run(state)
        if run is None or not run.has_predictions():
            return []
        try:
            return run.previews() or run.write_previews(self.cache.get(run.npz_path))
        except Exception:
            logger.exception("previews failed")
            return []

    def npz(self, state: State) -> Path | None:
        run = self._run(state)
        return run.npz_path if run is not None and run.has_predictions() else None


def _describe(view: ViewSettings, rec: Reconstruction) -> str:
    """'all frames (depth map + camera branch, confidence above the 50th percentile, filters: black, cameras)'."""
    what = "all frames" if view.frame is None else f"frame {view.frame} ({rec.names[view.frame]})"
    branch = "depth map + camera branch" if view.branch == "depth" else "point map branch"
    masks = (("sky", view.mask_sky), ("black", view.mask_black), ("white", view.mask_white))
    filters = [name for name, on in masks if on]
    return (
        f"{what} ({branch}, confidence above the {view.conf_threshold:g}th percentile"
        f"{', filters: ' + ', '.join(filters) if filters else ''}{', cameras' if view.show_cameras else ''})"
    )
