"""Per-session working folders and the files each reconstruction ("run") produces, cached per view.

Layout under ``<workdir_root>/sessions``::

    <owner key>/                      one per browser (vggtkit.app.access: served only to that browser)
      <session token>/                one per page (random 128-bit name); deleted when the page closes or
                                      after the expiry time without use
        run_<timestamp>_<token>/      one per upload
            images/                   the frames (copied images, sampled video frames)
            predictions.npz           the model's output (Reconstruction.save_npz)
            summary.txt               the run's report (time, peak memory, frames, resolution)
            depth/                    depth PNGs and colour previews (vggtkit.export.depth)
            previews/                 confidence previews
            sky_keep.npy              sky masks, computed once (only with a sky model)
            glb/<view key>/scene.glb  one GLB per combination of view settings (the official demo's cache)
            ply/<view key>/points.ply
            colmap/<view key>/colmap.zip

Nothing here imports gradio.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vggtkit.app.access import is_owner_key
from vggtkit.app.ingest import list_frames
from vggtkit.app.settings import ViewSettings
from vggtkit.pipeline import Reconstruction
from vggtkit.utils.atomic import atomic_path

if TYPE_CHECKING:
    from vggtkit.refine import RefineResult

__all__ = ["ReconstructionCache", "Run", "SessionStore", "ViewFile"]

logger = logging.getLogger(__name__)


class SessionStore:
    """Creates, checks, expires and removes the session and run folders below one root.

    Args:
        sessions_dir: the root; ``<root>/<owner key>/<session token>/run_<time>_<token>/``.
    """

    def __init__(self, sessions_dir: str | os.PathLike[str]) -> None:
        self.root = Path(sessions_dir).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def create_session(self, owner: str) -> Path:
        """A new session folder of the browser with owner key ``owner``."""
        if not is_owner_key(owner):
            raise ValueError(f"not an owner key: {owner!r}")
        path = self.root / owner / secrets.token_hex(16)
        path.mkdir(parents=True)
        return path

    def create_run(self, session: Path) -> Run:
        stamp = time.strftime("%Y%m%d_%H%M%S")
        path = self.check(session) / f"run_{stamp}_{secrets.token_hex(4)}"
        path.mkdir()
        self.touch(path)
        return Run(path)

    def check(self, path: str | os.PathLike[str]) -> Path:
        """The resolved path, which must be an existing folder inside the sessions root.

        Raises:
            ValueError: for anything else (never serve or delete outside the app's own folders).
        """
        resolved = Path(path).resolve()
        if resolved == self.root or self.root not in resolved.parents:
            raise ValueError(f"'{path}' is not a folder of this demo")
        if not resolved.is_dir():
            raise ValueError(
                "this session's files are gone (the session expired or was cleared); upload again"
            )
        return resolved

    def owner_of(self, path: str | os.PathLike[str]) -> str | None:
        """The owner key of a session or run folder (None outside the root)."""
        try:
            return Path(path).resolve().relative_to(self.root).parts[0]
        except (ValueError, IndexError):
            return None

    def touch(self, path: str | os.PathLike[str]) -> None:
        """Mark the session holding ``path`` as used now (its expiry counts from here)."""
        try:
            parts = Path(path).resolve().relative_to(self.root).parts
        except ValueError:
            return
        if len(parts) >= 2:
            with contextlib.suppress(OSError):
                os.utime(self.root / parts[0] / parts[1])

    def remove(self, path: str | os.PathLike[str] | None) -> None:
        """Delete a session or run folder (ignored when it is gone or not one of ours)."""
        if not path:
            return
        try:
            shutil.rmtree(self.check(path))
        except (ValueError, OSError) as exc:
            logger.debug("not removing %s: %s", path, exc)

    def expire(self, max_age_s: float, keep: Collection[Path] = (), now: float | None = None) -> list[Path]:
        """Delete the sessions unused for more than ``max_age_s`` seconds (and owner folders left empty).

        Args:
            max_age_s: seconds since a session's last use (:meth:`touch`).
            keep: folders in use (a running reconstruction); the sessions holding them stay.
            now: the current time (``time.time()``).

        Returns:
            The session folders deleted.
        """
        now = time.time() if now is None else now
        busy = {Path(p).resolve() for p in keep}
        removed = []
        for owner in [p for p in self.root.iterdir() if p.is_dir()]:
            for session in [p for p in owner.iterdir() if p.is_dir()]:
                in_use = any(b == session or session in b.parents for b in busy)
                if in_use or now - session.stat().st_mtime <= max_age_s:
                    continue
                shutil.rmtree(session, ignore_errors=True)
                removed.append(session)
            with contextlib.suppress(OSError):
                owner.rmdir()  # only when empty
        if removed:
            logger.info("deleted %d session(s) unused for %.0f s or more", len(removed), max_age_s)
        return removed


class ViewFile:
    """A file built for one view key, with a small JSON sidecar (e.g. the number of points)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.meta_path = path.parent / "meta.json"

    @property
    def exists(self) -> bool:
        return self.path.is_file() and self.meta_path.is_file()

    @property
    def meta(self) -> dict:
        return json.loads(self.meta_path.read_text())

    def write_meta(self, meta: dict) -> None:
        with atomic_path(self.meta_path) as tmp:
            tmp.write_text(json.dumps(meta))


class Run:
    """The folder of one upload and everything built from it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def images_dir(self) -> Path:
        return self.path / "images"

    @property
    def npz_path(self) -> Path:
        return self.path / "predictions.npz"

    def frames(self) -> list[str]:
        """Frame file names in reconstruction order."""
        return list_frames(self.images_dir)

    def frame_paths(self) -> list[Path]:
        return [self.images_dir / name for name in self.frames()]

    def has_predictions(self) -> bool:
        return self.npz_path.is_file()

    def write_summary(self, text: str) -> None:
        """Keep the run's report (time, memory, frames) so view changes can show it again."""
        with atomic_path(self.path / "summary.txt") as tmp:
            tmp.write_text(text)

    def summary(self) -> str:
        path = self.path / "summary.txt"
        return path.read_text() if path.is_file() else ""

    # -------------------------------------------------------------------- per-view files
    def glb_file(self, view: ViewSettings) -> ViewFile:
        return ViewFile(self.path / "glb" / view.glb_key() / "scene.glb")

    def ply_file(self, view: ViewSettings) -> ViewFile:
        return ViewFile(self.path / "ply" / view.ply_key() / "points.ply")

    def colmap_file(self, view: ViewSettings) -> ViewFile:
        return ViewFile(self.path / "colmap" / view.colmap_key() / "colmap.zip")

    def build_glb(
        self, rec: Reconstruction, view: ViewSettings, keep: np.ndarray | None
    ) -> tuple[ViewFile, bool]:
        """The GLB of ``view``; built only when not cached. Returns (file, built_now)."""
        from vggtkit.export.glb import export_glb

        target = self.glb_file(view)
        if target.exists:
            return target, False
        result = export_glb(rec, target.path, view.export_options(), keep)
        target.write_meta({"points": result.points})
        return target, True

    def build_ply(self, rec: Reconstruction, view: ViewSettings, keep: np.ndarray | None) -> ViewFile:
        from vggtkit.export.ply import export_ply

        target = self.ply_file(view)
        if not target.exists:
            result = export_ply(rec, target.path, view.export_options(), keep)
            target.write_meta({"points": result.points})
        return target

    def build_colmap_zip(self, rec: Reconstruction, view: ViewSettings, keep: np.ndarray | None) -> ViewFile:
        """``colmap.zip`` holding ``images/`` and ``sparse/0/`` (binary and text)."""
        from vggtkit.export import export_colmap

        target = self.colmap_file(view)
        if target.exists:
            return target
        target.path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".colmap.", dir=target.path.parent) as scratch:
            result = export_colmap(rec, Path(scratch) / "scene", view.export_options(), keep)
            with atomic_path(target.path) as tmp:  # tmp ends in ".zip", which make_archive appends
                shutil.make_archive(str(tmp.with_suffix("")), "zip", root_dir=Path(scratch) / "scene")
        target.write_meta({"points": result.points})
        return target

    @property
    def refined_colmap_file(self) -> ViewFile:
        """The COLMAP zip of a refined run (matched keypoints as observations), the same for every view."""
        return ViewFile(self.path / "colmap" / "refined" / "colmap.zip")

    def build_refined_colmap_zip(self, result: RefineResult) -> ViewFile:
        """``colmap.zip`` of a refinement result: ``images/`` and ``sparse/0/`` with the matched keypoints."""
        from vggtkit.refine import export_refined

        target = self.refined_colmap_file
        target.path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".colmap.", dir=target.path.parent) as scratch:
            written = export_refined(result, Path(scratch) / "scene", ["colmap"])
            for name in ("refine.json", "predictions_refined.npz"):  # the run keeps its own copies
                (Path(scratch) / "scene" / name).unlink(missing_ok=True)
            with atomic_path(target.path) as tmp:
                shutil.make_archive(str(tmp.with_suffix("")), "zip", root_dir=Path(scratch) / "scene")
        target.write_meta({"points": written["colmap"].points})
        return target

    def drop_refined_colmap_zip(self) -> None:
        """Forget the refined COLMAP zip (the run was reconstructed again)."""
        shutil.rmtree(self.refined_colmap_file.path.parent, ignore_errors=True)

    def sky_keep(self, rec: Reconstruction, sky_model: Path) -> np.ndarray:
        """(S, H, W) bool, True where not sky; computed once per run and saved."""
        from vggtkit.export.sky import sky_keep_masks

        path = self.path / "sky_keep.npy"
        if path.is_file():
            keep = np.load(path)
            if keep.shape == (rec.num_frames, *rec.model_hw):
                return keep
        keep = sky_keep_masks(rec, sky_model)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, keep)
        return keep

    # -------------------------------------------------------------------- previews
    def write_previews(self, rec: Reconstruction) -> list[tuple[str, str]]:
        """Depth (turbo) and confidence (viridis) previews per frame: ``[(png path, caption), ...]``."""
        import matplotlib
        from PIL import Image

        from vggtkit.export import export_depth

        export_depth(rec, self.path)
        depth_info = json.loads((self.path / "depth" / "depth.json").read_text())["frames"]
        cmap = matplotlib.colormaps["viridis"]
        out_dir = self.path / "previews"
        out_dir.mkdir(exist_ok=True)
        content = rec.content_mask()
        items: list[tuple[str, str]] = []
        for i, info in enumerate(depth_info):
            conf = np.log(np.maximum(np.nan_to_num(rec.depth_conf[i], nan=1.0), 1e-6))
            valid = content[i]
            lo, hi = np.percentile(conf[valid], [2, 98]) if valid.any() else (0.0, 1.0)
            norm = np.clip((conf - lo) / max(hi - lo, 1e-12), 0, 1)
            rgb = (cmap(norm)[..., :3] * 255).round().astype(np.uint8)
            rgb[~valid] = 0
            conf_path = out_dir / f"{i:04d}_conf.png"
            with atomic_path(conf_path) as tmp:
                Image.fromarray(rgb).save(tmp, format="PNG")
            items.append((str(self.path / "depth" / info["preview"]), f"depth {i}: {rec.names[i]}"))
            items.append((str(conf_path), f"confidence {i}: {rec.names[i]}"))
        return items

    def previews(self) -> list[tuple[str, str]]:
        """The previews written by :meth:`write_previews` (empty before a reconstruction)."""
        info_path = self.path / "depth" / "depth.json"
        if not info_path.is_file():
            return []
        items = []
        for i, info in enumerate(json.loads(info_path.read_text())["frames"]):
            items.append((str(self.path / "depth" / info["preview"]), f"depth {i}: {info['name']}"))
            items.append(
                (str(self.path / "previews" / f"{i:04d}_conf.png"), f"confidence {i}: {info['name']}")
            )
        return items


class ReconstructionCache:
    """The last few loaded ``predictions.npz`` files, keyed by path and modification time (thread-safe)."""

    def __init__(self, capacity: int = 4) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, int], Reconstruction] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, path: Path, rec: Reconstruction) -> None:
        key = (str(path), path.stat().st_mtime_ns)
        with self._lock:
            self._items[key] = rec
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def get(self, path: Path) -> Reconstruction:
        """The reconstruction saved at ``path`` (loaded from disk when not cached)."""
        key = (str(path), path.stat().st_mtime_ns)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        rec = Reconstruction.load_npz(path)
        with self._lock:
            self._items[key] = rec
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return rec

    def drop_under(self, folder: Path) -> None:
        prefix = str(folder.resolve())
        with self._lock:
            for key in [k for k in self._items if k[0].startswith(prefix)]:
                del self._items[key]
