"""The viewer served with viser: :func:`serve` starts it and returns a :class:`Viewer` handle.

Control changes (from any browser, or :meth:`Viewer.apply`) are handled by one worker thread that always builds
the newest settings, so a slider dragged over a large scene never queues a backlog of rebuilds. The server
listens on 127.0.0.1 unless told otherwise and never opens viser's public share tunnel.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

import numpy as np

from vggtkit.reconstruction import Reconstruction
from vggtkit.viewer.controls import Controls, SceneFacts
from vggtkit.viewer.scene import Frustum, SceneBuilder, SceneContents, SkyMasks, frame_images
from vggtkit.viewer.settings import (
    DEFAULT_PORT,
    DEFAULT_VIEWER_OPTIONS,
    PREDICTED,
    ViewerOptions,
    ViewSettings,
)
from vggtkit.viewer.source import SceneSource

__all__ = ["Viewer", "serve"]

logger = logging.getLogger(__name__)

_POINTS_NODE = "/points"


def _import_viser():
    try:
        import viser
    except ImportError as exc:
        raise ValueError(
            "the viewer needs viser, which is not installed: pip install 'vggtkit[viz]'"
        ) from exc
    return viser


def _check_can_listen(host: str, port: int) -> None:
    """Raise ValueError unless a server can listen on (host, port) now (port 0: any port of host)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValueError(f"cannot listen on host '{host}': {exc.strerror}") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server's own socket
        try:
            sock.bind(address)
        except OSError as exc:
            if port:
                raise ValueError(
                    f"port {port} on {host} is busy ({exc.strerror}); choose another port"
                ) from exc
            raise ValueError(f"cannot listen on host '{host}' ({exc.strerror})") from exc


def _start_viser(options: ViewerOptions) -> Any:
    """A running ``viser.ViserServer`` on the requested port; its banner is not printed (the caller reports)."""
    viser = _import_viser()
    _check_can_listen(options.host, options.port or 0)
    port = DEFAULT_PORT if options.port is None else options.port
    with contextlib.redirect_stdout(io.StringIO()):
        server = viser.ViserServer(host=options.host, port=port, label=options.title, verbose=False)
    if options.port and server.get_port() != options.port:  # taken between the check and the start
        _stop_quietly(server)
        raise ValueError(f"port {options.port} on {options.host} is busy; choose another port")
    _refuse_share_tunnel(server, viser)
    server.gui.configure_theme(show_share_button=False, control_width="medium")
    return server


def _refuse_share_tunnel(server: Any, viser: Any) -> None:
    """Drop viser's handler of share-link requests: any browser could otherwise make this machine open a public
    tunnel through viser's relay (the share button is hidden too)."""
    with contextlib.suppress(AssertionError, AttributeError, KeyError):
        server._websock_server.unregister_handler(viser._messages.ShareUrlRequest)


def _stop_quietly(server: Any) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        server.stop()


def _sky_masks(options: ViewerOptions) -> SkyMasks | None:
    """The sky-mask function of ``options.sky_model`` (None without one); checks the model file now."""
    if options.sky_model is None:
        return None
    from vggtkit.export.sky import check_sky_model, sky_keep_masks

    model = check_sky_model(options.sky_model)
    return lambda rec: sky_keep_masks(rec, model)


class Viewer:
    """A served scene: the viser server, its controls and the scene they currently show.

    Attributes:
        url: where to open the viewer.
        settings: the settings currently shown.
        scene: the :class:`SceneContents` currently shown.
        builder: builds scenes for settings (no browser needed).
    """

    def __init__(self, source: SceneSource, options: ViewerOptions = DEFAULT_VIEWER_OPTIONS) -> None:
        self.options = options
        self.source = source
        self.builder = SceneBuilder(source, _sky_masks(options))
        base = source.get(PREDICTED)
        self._facts = SceneFacts(
            camera_sets=tuple(source.names),
            frame_names=tuple(base.names),
            has_pointmap=base.world_points is not None,
            has_sky=self.builder.has_sky_masks,
        )
        self._cond = threading.Condition()
        self._render_lock = threading.Lock()
        self._pending = False
        self._busy = False
        self._stopping = False
        self._frusta: dict[str, Any] = {}
        self._images: dict[str, list[np.ndarray]] = {}
        self._points: Any = None
        self.settings: ViewSettings | None = None
        self.scene: SceneContents | None = None
        self._server = _start_viser(options)
        try:
            self._set_initial_camera(base)
            self.controls = Controls(
                self._server.gui, self._facts, options.initial, self._request, self._on_save
            )
            self._render(options.initial)
        except BaseException:
            _stop_quietly(self._server)
            raise
        self._worker = threading.Thread(target=self._work, name="vggtkit-viewer", daemon=True)
        self._worker.start()

    # ------------------------------------------------------------------ serving
    @property
    def port(self) -> int:
        return int(self._server.get_port())

    @property
    def url(self) -> str:
        host = self.options.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        return f"http://[{shown}]:{self.port}" if ":" in shown else f"http://{shown}:{self.port}"

    @property
    def server(self) -> Any:
        """The ``viser.ViserServer``."""
        return self._server

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._cond.notify_all()
        self._worker.join(timeout=10)
        _stop_quietly(self._server)
        logger.debug("viewer stopped")

    def __enter__(self) -> Viewer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ settings
    def apply(self, settings: ViewSettings, timeout: float = 60.0) -> SceneContents:
        """Show ``settings`` (the controls follow) and return the scene once it is shown.

        Raises:
            ValueError: settings the scene cannot show (a frame, branch, budget or camera set it lacks).
            TimeoutError: the scene was not rebuilt within ``timeout`` seconds.
        """
        self.controls.check(settings)
        self.controls.write(settings)
        self._request()
        if not self.wait_idle(timeout):
            raise TimeoutError(f"the scene was not rebuilt within {timeout} s")
        return self.scene

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every control change so far is shown; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not (self._pending or self._busy), timeout)

    def _request(self) -> None:
        with self._cond:
            self._pending = True
            self._cond.notify_all()

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._stopping)
                if self._stopping:
                    return
                self._pending, self._busy = False, True
            try:
                self._render(self.controls.read())
            except Exception as exc:  # a bad refined file or sky model must not stop the viewer
                logger.error("cannot show these settings: %s", exc)
                self._notify("Cannot show these settings", str(exc), error=True)
                if self.settings is not None:
                    self.controls.write(self.settings)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    # ------------------------------------------------------------------ drawing
    def _render(self, settings: ViewSettings) -> None:
        with self._render_lock:
            if settings == self.settings:
                return
            contents = self.builder.build(settings)
            previous = self.scene
            with self._server.atomic():
                self._draw_points(contents, previous)
                self._draw_frusta(contents.frusta)
                self.controls.status.content = self._status(contents)
            self._server.flush()  # send now rather than at the next message window
            self.settings, self.scene = settings, contents
        logger.debug(
            "showing %d of %d points, %d cameras",
            len(contents.points),
            contents.selected,
            len(contents.frusta),
        )

    def _draw_points(self, contents: SceneContents, previous: SceneContents | None) -> None:
        same = (
            previous is not None
            and previous.settings.selection_key() == contents.settings.selection_key()
            and previous.settings.max_points == contents.settings.max_points
        )  # the same points: only their size can differ
        if same and self._points is not None:
            self._points.point_size = contents.point_size
            return
        centre = np.asarray(self.builder.layout.centre, dtype=np.float32)
        # float16 positions relative to the scene centre: half the bytes of float32, precise to ~1e-3 of the extent
        self._points = self._server.scene.add_point_cloud(
            _POINTS_NODE,
            points=contents.points.xyz - centre,
            colors=contents.points.rgb,
            point_size=contents.point_size,
            precision="float16",
            position=tuple(centre),
            point_shape="square",
        )

    def _draw_frusta(self, frusta: tuple[Frustum, ...]) -> None:
        wanted = {f.name for f in frusta}
        for frustum in frusta:
            if frustum.name not in self._frusta:
                self._frusta[frustum.name] = self._add_frustum(frustum)
            self._frusta[frustum.name].visible = True
        for name, handle in self._frusta.items():
            if name not in wanted:
                handle.visible = False

    def _add_frustum(self, frustum: Frustum) -> Any:
        image = None
        if frustum.with_image:
            camera_set = frustum.name.split("/")[2]
            if camera_set not in self._images:
                rec = self.source.get(camera_set)
                self._images[camera_set] = frame_images(rec, self.options.frustum_image_size)
            image = self._images[camera_set][frustum.frame]
        return self._server.scene.add_camera_frustum(
            frustum.name,
            fov=frustum.fov,
            aspect=frustum.aspect,
            scale=self.builder.layout.frustum_scale,
            thickness=self.builder.layout.frustum_scale * 0.03,
            color=frustum.color,
            image=image,
            format="jpeg",
            jpeg_quality=85,
            wxyz=frustum.wxyz,
            position=frustum.position,
        )

    def visible_frusta(self) -> list[str]:
        """Names of the frusta the server currently shows (what browsers draw)."""
        return sorted(name for name, handle in self._frusta.items() if handle.visible)

    @property
    def shown_points(self) -> int:
        """Number of points in the point cloud the server currently shows."""
        return 0 if self._points is None else len(self._points.points)

    @staticmethod
    def _status(contents: SceneContents) -> str:
        return (
            f"**{len(contents.points):,}** of {contents.selected:,} points shown, "
            f"**{len(contents.frusta)}** camera{'' if len(contents.frusta) == 1 else 's'}"
        )

    def _set_initial_camera(self, rec: Reconstruction) -> None:
        """Look at the scene from just behind the reference camera, with its up direction."""
        world_from_ref = rec.world_from_cam()[rec.reference_index]
        up = -world_from_ref[:3, 1]
        camera = world_from_ref[:3, 3]
        centre = np.asarray(self.builder.layout.centre)
        position = camera - 0.5 * (centre - camera) + 0.1 * self.builder.layout.extent * up
        self._server.scene.set_up_direction(tuple(up))
        self._server.initial_camera.position = tuple(position)
        self._server.initial_camera.look_at = tuple(centre)
        self._server.initial_camera.up = tuple(up)

    # ------------------------------------------------------------------ saving
    def save_ply(self, path: str | os.PathLike[str] | None = None) -> tuple[Path, int]:
        """Write every point that passes the current filters (not only the shown sample) as a binary PLY,
        atomically. Default path: ``view_<cameras>_<branch>_conf<pct>_<frame>[_masks].ply`` in the save folder.

        Returns:
            The path written and the number of points.
        """
        from vggtkit.export.ply import write_ply

        settings = self.settings
        points = self.builder.selection(settings)
        target = Path(path) if path is not None else self._save_dir() / _ply_name(settings)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_ply(target, points.xyz, points.rgb, points.conf)
        logger.info("saved %d points to %s", len(points), target)
        return target, len(points)

    def _save_dir(self) -> Path:
        if self.options.save_dir is not None:
            return Path(self.options.save_dir)
        return self.source.folder if self.source.folder is not None else Path.cwd()

    def _on_save(self, event: Any) -> None:
        try:
            path, count = self.save_ply()
        except (OSError, ValueError) as exc:
            self._notify("Could not save the PLY", str(exc), error=True, client=event.client)
            return
        self._notify("Saved", f"{count:,} points to {path}", client=event.client)

    def _notify(self, title: str, body: str, error: bool = False, client: Any = None) -> None:
        clients = [client] if client is not None else list(self._server.get_clients().values())
        for c in clients:
            c.add_notification(title, body, color="red" if error else "green", auto_close_seconds=8.0)


def _ply_name(s: ViewSettings) -> str:
    frame = "all" if s.frame is None else f"frame{s.frame:04d}"
    masks = "".join(
        f"_no{name}"
        for name, on in (("black", s.mask_black), ("white", s.mask_white), ("sky", s.mask_sky))
        if on
    )
    return f"view_{s.cameras}_{s.branch}_conf{s.conf_threshold:g}_{frame}{masks}.ply"


def serve(
    scene: SceneSource | Reconstruction | str | os.PathLike[str],
    options: ViewerOptions = DEFAULT_VIEWER_OPTIONS,
) -> Viewer:
    """Serve a reconstruction in the browser and return the running :class:`Viewer` (stop it with ``stop()``
    or use it as a context manager).

    Args:
        scene: a :class:`SceneSource`, a reconstruction in memory, or a run's output folder / predictions npz.
        options: host, port, initial settings, sky model, save folder.

    Raises:
        ValueError: unreadable input, a busy port, a host that cannot be listened on, viser missing, or initial
            settings the scene cannot show.
    """
    if isinstance(scene, Reconstruction):
        scene = SceneSource.from_reconstruction(scene)
    elif not isinstance(scene, SceneSource):
        scene = SceneSource.from_path(scene)
    return Viewer(scene, options)
