"""Who may read which file: every browser gets a random cookie, files are served only to their owner.

A browser's *owner key* is an HMAC of its cookie under a secret that lives only in this process, so a file's
address (``sessions/<owner key>/...``) never reveals the cookie that unlocks it, and a leaked address is useless
without that browser's cookie. The rules of :meth:`FilePolicy.allows`:

- ``sessions/<owner key>/...`` (uploads copied by the app, predictions, GLB, PLY, COLMAP, previews): only the browser
  whose cookie gives that owner key, unless the demo was started with result sharing on;
- the example scenes the app copied at start-up: everyone;
- gradio's upload folder: only the browser that uploaded the file (recorded when the upload is answered);
- anything else, and any path with a hidden (dot-prefixed) component: nobody.

Nothing here imports gradio.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["COOKIE", "FilePolicy", "OwnerKeys", "is_owner_key"]

COOKIE = "vggtkit_browser"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
_OWNER_KEY = re.compile(r"[0-9a-f]{32}")


def is_owner_key(value: object) -> bool:
    """Whether ``value`` has the form of an owner key (safe as a folder name)."""
    return isinstance(value, str) and _OWNER_KEY.fullmatch(value) is not None


class OwnerKeys:
    """Browser cookies and the owner keys derived from them (HMAC-SHA256 under a per-process secret)."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    @staticmethod
    def new_token() -> str:
        """A fresh cookie value (256 random bits)."""
        return secrets.token_urlsafe(32)

    def key(self, token: str | None) -> str | None:
        """The owner key of a cookie value; None when the value is missing or malformed."""
        if not token or not _TOKEN.fullmatch(token):
            return None
        return hmac.new(self._secret, token.encode(), hashlib.sha256).hexdigest()[:32]

    def throwaway(self) -> str:
        """An owner key that no browser holds (for requests that came without a cookie)."""
        return self.key(self.new_token())  # type: ignore[return-value]


def _resolve(path: str | os.PathLike[str]) -> Path | None:
    try:
        return Path(os.path.abspath(path)).resolve()
    except (OSError, ValueError, RuntimeError):
        return None


def _relative(path: Path, root: Path) -> tuple[str, ...] | None:
    try:
        return path.relative_to(root).parts
    except ValueError:
        return None


class FilePolicy:
    """Which browser may read which file (see the module docstring).

    Args:
        sessions_dir: the per-owner folders ``<sessions_dir>/<owner key>/...``.
        public_dirs: folders served to everyone (the example scenes).
        uploads_dir: gradio's upload folder.
        share_results: serve the per-owner folders to everyone.
    """

    def __init__(
        self,
        sessions_dir: str | os.PathLike[str],
        public_dirs: Sequence[str | os.PathLike[str]],
        uploads_dir: str | os.PathLike[str],
        share_results: bool = False,
    ) -> None:
        self.sessions_dir = Path(sessions_dir).resolve()
        self.public_dirs = tuple(Path(p).resolve() for p in public_dirs)
        self.uploads_dir = Path(uploads_dir).resolve()
        self.share_results = share_results
        self._uploads: dict[Path, set[str]] = {}
        self._lock = threading.Lock()

    def allows(self, requested: str | os.PathLike[str], owner: str | None) -> bool:
        """Whether the browser with owner key ``owner`` (None: no cookie) may read ``requested``."""
        path = _resolve(requested)
        if path is None or not path.is_file():
            return False
        parts = _relative(path, self.sessions_dir)
        if parts is not None:
            if any(p.startswith(".") for p in parts):
                return False
            return self.share_results or (len(parts) > 1 and owner is not None and parts[0] == owner)
        if any(_relative(path, root) is not None for root in self.public_dirs):
            return not any(p.startswith(".") for p in path.parts)
        return self.uploaded_by(path, owner)

    # ----------------------------------------------------------------------------------- gradio's uploads
    def record_upload(self, path: str | os.PathLike[str], owner: str) -> None:
        """Remember that ``owner`` uploaded ``path`` (ignored outside gradio's upload folder)."""
        resolved = _resolve(path)
        if resolved is None or _relative(resolved, self.uploads_dir) is None:
            return
        with self._lock:
            self._uploads.setdefault(resolved, set()).add(owner)

    def uploaded_by(self, path: str | os.PathLike[str], owner: str | None) -> bool:
        """Whether ``owner`` uploaded ``path``."""
        resolved = _resolve(path)
        with self._lock:
            return owner is not None and owner in self._uploads.get(resolved, ())  # type: ignore[arg-type]

    def delete_uploads(self, paths: Iterable[str | os.PathLike[str]], owner: str | None = None) -> None:
        """Delete uploaded files (and their folders when empty) and forget them.

        Args:
            paths: files in gradio's upload folder (others are ignored).
            owner: delete only ``owner``'s uploads, and a file only once no other browser uploaded it too (the
                upload folder names files by content); None: every one of ``paths``.
        """
        for path in paths:
            resolved = _resolve(path)
            if resolved is None or _relative(resolved, self.uploads_dir) is None:
                continue
            with self._lock:
                owners = self._uploads.get(resolved, set())
                if owner is not None and owner not in owners:
                    continue
                owners.discard(owner)  # type: ignore[arg-type]
                if owner is not None and owners:
                    continue
                self._uploads.pop(resolved, None)
            resolved.unlink(missing_ok=True)
            if resolved.parent != self.uploads_dir:
                with contextlib.suppress(OSError):  # not empty: other files of the same upload
                    resolved.parent.rmdir()

    def uploads(self) -> list[Path]:
        """Every recorded upload."""
        with self._lock:
            return list(self._uploads)

    def forget_missing(self) -> int:
        """Drop the records of uploads whose files are gone (gradio expires its cache); returns how many."""
        with self._lock:
            gone = [p for p in self._uploads if not p.exists()]
            for path in gone:
                del self._uploads[path]
        return len(gone)
