"""What the demo's buttons do, without gradio: uploads, reconstruction, view changes, downloads, clearing.

Every method takes and returns plain values (the session state is a small dict the UI keeps on the server
side), turns user mistakes into one-line messages, and never lets a traceback reach the page.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vggtkit.app.engine import ModelRunner
from vggtkit.app.ingest import UploadError, UploadLimits, ingest_uploads
from vggtkit.app.session import ReconstructionCache, Run, SessionStore
from vggtkit.app.settings import DemoSettings, ViewSettings
from vggtkit.pipeline import Reconstruction
from vggtkit.pipeline.inputs import IMAGE_SUFFIXES, natural_key

__all__ = [
    "PROMPT",
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
Progress = Callable[[str, int, int], None]
State = dict | None


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

    Args:
        settings: limits, folders, sky model.
        runner: the shared model.
        example_dirs: folders of example scenes; their images are copied under ``settings.examples_dir``.
    """

    def __init__(
        self, settings: DemoSettings, runner: ModelRunner, example_dirs: Sequence[str | os.PathLike[str]] = ()
    ):
        self.settings = settings
        self.runner = runner
        settings.workdir_root.mkdir(parents=True, exist_ok=True)
        self.store = SessionStore(settings.sessions_dir)
        self.cache = ReconstructionCache(capacity=max(4, 2 * settings.concurrency))
        self.limits = UploadLimits(settings.max_frames, settings.max_upload_bytes)
        self.examples = self._copy_examples(example_dirs)
        self._busy: set[Path] = set()
        self._busy_lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ examples
    def _copy_examples(self, dirs: Sequence[str | os.PathLike[str]]) -> list[Example]:
        examples: list[Example] = []
        names: set[str] = set()
        for folder in dirs:
            folder = Path(folder).expanduser()
            frames = _scene_frames(folder)
            if not frames:
                raise ValueError(
                    f"example folder '{folder}' holds no images ({', '.join(IMAGE_SUFFIXES[:4])}, ...)"
                )
            if len(frames) > self.settings.max_frames:
                logger.warning(
                    "example %s has %d frames, over max_frames=%d; keeping the first %d",
                    folder,
                    len(frames),
                    self.settings.max_frames,
                    self.settings.max_frames,
                )
                frames = frames[: self.settings.max_frames]
            name = folder.name if folder.name != "images" else folder.parent.name
            base, k = name, 1
            while name in names:
                name, k = f"{base}_{k}", k + 1
            names.add(name)
            target = self.settings.examples_dir / name
            target.mkdir(parents=True, exist_ok=True)
            copies = []
            for frame in frames:
                dest = target / frame.name
                if not dest.is_file() or dest.stat().st_size != frame.stat().st_size:
                    shutil.copyfile(frame, dest)
                copies.append(dest)
            examples.append(Example(name, tuple(copies)))
        return examples

    # ------------------------------------------------------------------------------------------ state
    def _session(self, state: State) -> Path:
        if state and state.get("session"):
            try:
                return self.store.check(state["session"])
            except ValueError:
                pass
        return self.store.create_session()

    def _run(self, state: State) -> Run | None:
        if not state or not state.get("run"):
            return None
        try:
            return Run(self.store.check(state["run"]))
        except ValueError:
            return None

    def _replace_run(self, state: State, session: Path) -> Run:
        old = self._run(state)
        run = self.store.create_run(session)
        if old is not None:
            with self._busy_lock:
                busy = old.path in self._busy
            if not busy:
                self.cache.drop_under(old.path)
                self.store.remove(old.path)
        return run

    def release(self, state: State) -> None:
        """Delete a session's folder (gradio calls this when the browser session ends)."""
        if state and state.get("session"):
            try:
                path = self.store.check(state["session"])
            except ValueError:
                return
            self.cache.drop_under(path)
            self.store.remove(path)

    def clear(self, state: State) -> dict:
        """Forget the current upload and its results; the session folder stays."""
        run = self._run(state)
        session = self._session(state)
        if run is not None:
            with self._busy_lock:
                busy = run.path in self._busy
            if not busy:
                self.cache.drop_under(run.path)
                self.store.remove(run.path)
        return {"session": str(session), "run": None}

    # ------------------------------------------------------------------------------------------ uploads
    def upload(
        self,
        state: State,
        video: str | None,
        images: Sequence[str] | None,
        fps: float,
        progress: Progress | None = None,
    ) -> UploadOutcome:
        """Check and copy uploaded images and sample an uploaded video into a fresh run folder."""
        session = self._session(state)
        if not video and not images:
            return UploadOutcome(
                self.clear({"session": str(session), "run": (state or {}).get("run")}),
                [],
                [],
                PROMPT,
                ok=True,
            )
        run = self._replace_run(state, session)
        try:
            frames = ingest_uploads(run.images_dir, images, video, fps, self.limits, progress)
        except UploadError as exc:
            self.store.remove(run.path)
            return UploadOutcome(
                {"session": str(session), "run": None}, [], [], f"Upload problem: {exc}", ok=False
            )
        except Exception as exc:  # never a traceback on the page
            logger.exception("upload failed")
            self.store.remove(run.path)
            return UploadOutcome(
                {"session": str(session), "run": None},
                [],
                [],
                f"Upload failed with an internal error ({type(exc).__name__}: {exc}).",
                ok=False,
            )
        gallery = [(str(run.images_dir / name), name) for name in frames]
        message = f"Upload complete: {len(frames)} frame(s). Click 'Reconstruct' to begin 3D processing."
        new_state = {"session": str(session), "run": str(run.path), "fps": fps}
        return UploadOutcome(new_state, frames, gallery, message, ok=True)

    def load_example(self, state: State, index: int, fps: float = 1.0) -> UploadOutcome:
        """Load example ``index`` as if its images had been uploaded."""
        if not 0 <= index < len(self.examples):
            return UploadOutcome(state or {}, [], [], f"No example {index}.", ok=False)
        example = self.examples[index]
        outcome = self.upload(state, None, [str(p) for p in example.frames], fps)
        outcome.files = [str(p) for p in example.frames]
        if outcome.ok:
            outcome.message = f"Example '{example.name}' loaded: {len(outcome.frames)} frame(s)."
        return outcome

    # ------------------------------------------------------------------------------------------ model
    def reconstruct(
        self,
        state: State,
        reference: int | None,
        mode: str,
        view: ViewSettings,
        progress: Progress | None = None,
    ) -> RunOutcome:
        """Run the model on the current upload, save ``predictions.npz``, build the first view."""
        run = self._run(state)
        if run is None or not run.frames():
            return RunOutcome(False, "Nothing to reconstruct: upload a video or images first.")
        frames = run.frames()
        reference = int(reference or 0)
        if not 0 <= reference < len(frames):
            reference = 0
        with self._busy_lock:
            self._busy.add(run.path)
        try:
            rec, report = self.runner.run(run.images_dir, reference=reference, mode=mode, progress=progress)
            rec.save_npz(run.npz_path)
            self.cache.put(run.npz_path, rec)
            summary = f"{report.summary()} Reference frame: {reference} ({rec.names[reference]})."
            run.write_summary(summary)
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

    # ------------------------------------------------------------------------------------------ views
    def _keep(self, run: Run, rec: Reconstruction, view: ViewSettings) -> np.ndarray | None:
        if not view.mask_sky:
            return None
        if self.settings.sky_model is None:
            raise ValueError(
                "sky filtering is off: start the demo with --sky-model PATH (a sky-segmentation ONNX "
                "file such as skyseg.onnx)"
            )
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
        what = "all frames" if view.frame is None else f"frame {view.frame} ({rec.names[view.frame]})"
        branch = "depth map + camera branch" if view.branch == "depth" else "point map branch"
        filters = [
            n
            for n, on in (("sky", view.mask_sky), ("black", view.mask_black), ("white", view.mask_white))
            if on
        ]
        took = f"built in {time.perf_counter() - start:.2f} s" if built else "from the cache"
        message = (
            f"Showing {points} points of {what} ({branch}, confidence above the {view.conf_threshold:g}th "
            f"percentile{', filters: ' + ', '.join(filters) if filters else ''}"
            f"{', cameras' if view.show_cameras else ''}); view {took}."
        )
        return ViewOutcome(glb.path, ply.path, message, points, cached=not built)

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
        target = run.colmap_file(view)
        return target.path if target.exists else None

    def colmap_zip(self, state: State, view: ViewSettings) -> Path | None:
        """``colmap.zip`` (images + sparse/0) for the view's confidence and masks; None before a run or on error."""
        run = self._run(state)
        if run is None or not run.has_predictions():
            return None
        try:
            rec = self.cache.get(run.npz_path)
            return run.build_colmap_zip(rec, view, self._keep(run, rec, view)).path
        except Exception:
            logger.exception("COLMAP export failed")
            return None

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
