"""The gradio 6 web demo: every control of the official ``demo_gradio.py`` plus downloads, run statistics,
depth / confidence previews, a reference-frame choice, per-browser folders and bounded concurrency.

``build_demo(...)`` returns the ``gr.Blocks``; ``launch_demo(demo, ...)`` serves it on 127.0.0.1 (never
``share=True``) behind :class:`~vggtkit.app.guard.DemoGuard`, which serves each result file only to the browser
that produced it; ``shutdown_demo(demo)`` stops it and deletes a temporary work folder. The controller that does
the work is ``demo.vggtkit`` (its ``runner.model_runs`` counts forward passes).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gradio as gr
from starlette.middleware import Middleware

from vggtkit.app.access import COOKIE, FilePolicy, OwnerKeys
from vggtkit.app.controller import (
    PROMPT,
    DemoController,
    RunOutcome,
    UploadOutcome,
    ViewOutcome,
    bundled_example_dirs,
)
from vggtkit.app.engine import ModelRunner
from vggtkit.app.guard import DemoGuard
from vggtkit.app.server import Periodic
from vggtkit.app.settings import BRANCH_CHOICES, DemoSettings, ViewSettings, frame_choices
from vggtkit.io.paths import is_video_path
from vggtkit.weights import BUNDLED_MODELS, DEFAULT_CHECKPOINT

__all__ = ["build_demo", "default_checkpoint", "launch_demo", "shutdown_demo"]

logger = logging.getLogger(__name__)

DEMO_MODEL = "tiny-synthetic"
_INTRO = """# vggtkit: VGGT 3-D reconstruction
Upload a video (sampled at the frame rate below) or several images, check the preview, click **Reconstruct**.
The 3-D view shows the point cloud and the cameras; the controls below it change the view without running
the model again. Download the scene as GLB, the points as PLY, a COLMAP model (zip) or the raw predictions (npz).
"""
_SKY_OFF = "Unavailable: this demo was started without a sky-segmentation model."
_LOADING = "Loading and Reconstructing..."
# Gradio refuses a file over its size limit in the browser, before any request; this script also reports the
# refusal to the server (through a hidden text box), so that the log says what happened.
_REFUSAL_SCRIPT = """<script>
(() => {
  const boxes = ["#input-images", "#input-video"];
  const inBox = (el) => el instanceof Element && boxes.some((id) => el.closest(id));
  function report(files) {
    const limit = (window.gradio_config || {}).max_file_size;
    const big = Array.from(files || []).filter((f) => limit && f.size > limit);
    const box = document.querySelector("#upload-refusal textarea");
    if (!big.length || !box) return;
    box.value = JSON.stringify({files: big.map((f) => ({name: f.name, bytes: f.size})), at: Date.now()});
    box.dispatchEvent(new Event("input", {bubbles: true}));
  }
  document.addEventListener("change", (e) => {
    if (inBox(e.target) && e.target.matches("input[type=file]")) report(e.target.files);
  }, true);
  document.addEventListener("drop", (e) => {
    if (inBox(e.target) && e.dataTransfer) report(e.dataTransfer.files);
  }, true);
})();
</script>"""


def default_checkpoint() -> str:
    """``tiny-synthetic`` when the package bundles it, else ``facebook/VGGT-1B``."""
    return DEMO_MODEL if DEMO_MODEL in BUNDLED_MODELS else DEFAULT_CHECKPOINT


@dataclass
class _Serving:
    """What serving one demo needs besides the UI: cookies, file access, the periodic clean-up, a temporary
    folder to delete at shutdown."""

    keys: OwnerKeys
    policy: FilePolicy
    temporary_root: Path | None
    janitor: Periodic | None = None


def _serving(demo: gr.Blocks) -> _Serving:
    return demo.vggtkit_serving  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------------- build
def build_demo(
    model_or_checkpoint: Any = None,
    *,
    device: str = "auto",
    dtype: str = "float32",
    resolution: int | None = None,
    workdir_root: str | os.PathLike[str] | None = None,
    examples: Sequence[str | os.PathLike[str]] | Literal["bundled"] | None = "bundled",
    preload: str | os.PathLike[str] | None = None,
    settings: DemoSettings | None = None,
) -> gr.Blocks:
    """Build the web demo around one model.

    Args:
        model_or_checkpoint: a model of any family, or anything :func:`vggtkit.from_pretrained` takes (default:
            :func:`default_checkpoint`). Loaded once, shared by every session.
        device: "auto", "cpu", "cuda", "cuda:N" or "mps".
        dtype: "float32", "bfloat16" or "float16".
        resolution: model input resolution in pixels, a multiple of the model's patch size (None: the resolution
            the checkpoint was trained at).
        workdir_root: the folder for every file the app writes and serves (default: ``settings.workdir_root``,
            else a new temporary folder, deleted by :func:`shutdown_demo` or when the process exits).
        examples: folders of example scenes, "bundled" (the scenes in ``vggtkit/assets/example``) or None.
        preload: a folder of images loaded and reconstructed when a page opens (``vggtkit demo --example``).
        settings: limits, sharing and expiry (default: :class:`DemoSettings` defaults).

    Returns:
        The ``gr.Blocks`` app (queue configured); ``demo.vggtkit`` is its :class:`DemoController`.

    Raises:
        ValueError: bad settings, a checkpoint that cannot be loaded, or an example folder without images.
    """
    settings, temporary = _settings_with_root(settings, workdir_root)
    try:
        runner = ModelRunner(
            model_or_checkpoint if model_or_checkpoint is not None else default_checkpoint(),
            device=device,
            dtype=dtype,
            resolution=resolution,
        )
        example_dirs, n_listed, preload_index = _example_folders(examples, preload)
        serving = _Serving(OwnerKeys(), _file_policy(settings), temporary)
        controller = DemoController(settings, runner, example_dirs, policy=serving.policy)
    except BaseException:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
        raise
    # Files the app writes are served from where they are (not copied into gradio's cache), behind the guard.
    gr.set_static_paths([str(settings.sessions_dir), str(settings.examples_dir)])
    demo = _build_ui(controller, serving.keys, n_listed, preload_index)
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.concurrency)
    demo.vggtkit = controller  # type: ignore[attr-defined]
    demo.vggtkit_serving = serving  # type: ignore[attr-defined]
    return demo


def _settings_with_root(
    settings: DemoSettings | None, workdir_root: str | os.PathLike[str] | None
) -> tuple[DemoSettings, Path | None]:
    """The settings with their work folder (a new temporary one, also returned, when none is given)."""
    settings = settings or DemoSettings()
    root = workdir_root if workdir_root is not None else settings.workdir_root
    if root is not None:
        return dataclasses.replace(settings, workdir_root=Path(root)), None
    temporary = Path(tempfile.mkdtemp(prefix="vggtkit-demo-"))
    atexit.register(shutil.rmtree, temporary, ignore_errors=True)
    return dataclasses.replace(settings, workdir_root=temporary), temporary


def _file_policy(settings: DemoSettings) -> FilePolicy:
    from gradio.utils import get_upload_folder

    return FilePolicy(
        settings.sessions_dir,
        [settings.examples_dir],
        get_upload_folder(),
        share_results=settings.share_results,
    )


def _example_folders(
    examples: Sequence[str | os.PathLike[str]] | Literal["bundled"] | None,
    preload: str | os.PathLike[str] | None,
) -> tuple[list[Path], int, int | None]:
    """Every example folder (the preloaded one appended when it is not listed), how many the examples table
    lists, and the preloaded folder's index (None: no preload)."""
    listed = bundled_example_dirs() if examples == "bundled" else list(examples or [])
    folders = [Path(p).expanduser().resolve() for p in listed]
    n_listed = len(folders)
    if preload is None:
        return folders, n_listed, None
    preload_dir = Path(preload).expanduser().resolve()
    if preload_dir not in folders:
        folders.append(preload_dir)
    return folders, n_listed, folders.index(preload_dir)


# --------------------------------------------------------------------------------------------------- page
@dataclass
class _Page:
    """The page's components, and the lists of them that events read and write."""

    state: gr.State
    video: gr.Video
    fps: gr.Number
    images: gr.File
    gallery: gr.Gallery
    log: gr.Textbox
    refusal: gr.Textbox
    viewer: gr.Model3D
    run_btn: gr.Button
    clear_btn: gr.Button
    mode: gr.Radio
    reference: gr.Dropdown
    conf: gr.Slider
    frame: gr.Dropdown
    show_cam: gr.Checkbox
    sky: gr.Checkbox
    black: gr.Checkbox
    white: gr.Checkbox
    dl_glb: gr.DownloadButton
    dl_ply: gr.DownloadButton
    dl_colmap: gr.DownloadButton
    dl_npz: gr.DownloadButton
    previews: gr.Gallery
    examples: gr.Dataset | None = None

    @property
    def view_inputs(self) -> list[Any]:
        return [self.state, self.conf, self.frame, self.mode, self.show_cam, self.sky, self.black, self.white]

    @property
    def run_inputs(self) -> list[Any]:
        return [
            self.state,
            self.reference,
            self.conf,
            self.mode,
            self.show_cam,
            self.sky,
            self.black,
            self.white,
        ]

    @property
    def reset_outputs(self) -> list[Any]:
        return [self.viewer, self.frame, self.dl_glb, self.dl_ply, self.dl_colmap, self.dl_npz, self.previews]

    @property
    def upload_outputs(self) -> list[Any]:
        return [
            self.state,
            self.gallery,
            self.log,
            self.reference,
            self.images,
            self.video,
            *self.reset_outputs,
        ]

    @property
    def run_outputs(self) -> list[Any]:
        return [self.viewer, self.log, self.frame, self.dl_glb, self.dl_ply, self.dl_npz]

    @property
    def view_outputs(self) -> list[Any]:
        return [self.viewer, self.log, self.dl_glb, self.dl_ply, self.dl_colmap]


def _input_column(settings: DemoSettings) -> dict[str, Any]:
    video = gr.Video(label="Upload Video", sources=["upload"], interactive=True, elem_id="input-video")
    fps = gr.Number(
        value=settings.default_fps,
        label="Video frames per second",
        minimum=0.01,
        maximum=60,
        step=0.5,
        elem_id="video-fps",
        info="Frames sampled from the video per second of video (the original demo: 1).",
    )
    images = gr.File(file_count="multiple", label="Upload Images", interactive=True, elem_id="input-images")
    gallery = gr.Gallery(
        label="Preview", columns=4, height=300, elem_id="preview", object_fit="contain", interactive=False
    )
    return {"video": video, "fps": fps, "images": images, "gallery": gallery}


def _view_controls(sky_available: bool) -> dict[str, Any]:
    with gr.Row():
        mode = gr.Radio(
            list(BRANCH_CHOICES),
            value="Depthmap and Camera Branch",
            label="Prediction Mode",
            elem_id="prediction-mode",
            info="Points from depth + cameras, or from the point-map head.",
        )
        reference = gr.Dropdown(
            choices=[],
            value=None,
            label="Reference frame",
            info="The frame that defines the world frame (used at the next Reconstruct).",
            elem_id="reference-frame",
            interactive=True,
        )
    with gr.Row():
        conf = gr.Slider(
            0,
            100,
            value=50,
            step=0.1,
            label="Confidence Threshold (%)",
            info="Percentile of the least confident points to drop.",
            elem_id="conf-thres",
        )
        frame = gr.Dropdown(
            choices=frame_choices([]), value="All", label="Show Points from Frame", elem_id="frame-filter"
        )
    with gr.Row():
        show_cam = gr.Checkbox(value=True, label="Show Camera", elem_id="show-cam")
        sky = gr.Checkbox(
            value=False,
            label="Filter Sky",
            interactive=sky_available,
            info=None if sky_available else _SKY_OFF,
            elem_id="filter-sky",
        )
        black = gr.Checkbox(value=False, label="Filter Black Background", elem_id="filter-black")
        white = gr.Checkbox(value=False, label="Filter White Background", elem_id="filter-white")
    return {
        "mode": mode,
        "reference": reference,
        "conf": conf,
        "frame": frame,
        "show_cam": show_cam,
        "sky": sky,
        "black": black,
        "white": white,
    }


def _output_column(sky_available: bool) -> dict[str, Any]:
    log = gr.Textbox(value=PROMPT, label="Log", lines=3, max_lines=8, interactive=False, elem_id="log")
    refusal = gr.Textbox(visible="hidden", interactive=True, elem_id="upload-refusal", show_label=False)
    viewer = gr.Model3D(
        label="3D Reconstructed Point Cloud and Camera Poses",
        height=520,
        zoom_speed=0.5,
        pan_speed=0.5,
        interactive=False,
        elem_id="viewer",
    )
    with gr.Row():
        run_btn = gr.Button("Reconstruct", variant="primary", scale=1, elem_id="reconstruct-btn")
        clear_btn = gr.Button("Clear", variant="secondary", scale=1, elem_id="clear-btn")
    controls = _view_controls(sky_available)
    with gr.Row():
        dl_glb = gr.DownloadButton("Download GLB", interactive=False, elem_id="download-glb")
        dl_ply = gr.DownloadButton("Download PLY", interactive=False, elem_id="download-ply")
        dl_colmap = gr.DownloadButton("Download COLMAP (zip)", interactive=False, elem_id="download-colmap")
        dl_npz = gr.DownloadButton("Download predictions.npz", interactive=False, elem_id="download-npz")
    previews = gr.Gallery(
        label="Depth and confidence",
        columns=6,
        height=260,
        elem_id="depth-previews",
        object_fit="contain",
        interactive=False,
    )
    return {
        "log": log,
        "refusal": refusal,
        "viewer": viewer,
        "run_btn": run_btn,
        "clear_btn": clear_btn,
        **controls,
        "dl_glb": dl_glb,
        "dl_ply": dl_ply,
        "dl_colmap": dl_colmap,
        "dl_npz": dl_npz,
        "previews": previews,
    }


def _examples_table(ctl: DemoController, n_examples: int) -> gr.Dataset | None:
    if not n_examples:
        return None
    rows = [[str(ex.frames[0]), ex.name, len(ex.frames)] for ex in ctl.examples[:n_examples]]
    return gr.Dataset(
        components=["image", "textbox", "number"],
        samples=rows,
        type="index",
        headers=["Preview", "Scene", "Frames"],
        layout="table",
        label="Examples",
        elem_id="examples",
    )


def _layout(ctl: DemoController, n_examples: int) -> _Page:
    state = gr.State(None, delete_callback=ctl.release)
    gr.Markdown(_INTRO)
    with gr.Row():
        with gr.Column(scale=2):
            inputs = _input_column(ctl.settings)
        with gr.Column(scale=4):
            outputs = _output_column(ctl.settings.sky_model is not None)
    return _Page(state=state, **inputs, **outputs, examples=_examples_table(ctl, n_examples))


# --------------------------------------------------------------------------------------------------- events
def _progress_adapter(progress: gr.Progress | None) -> Callable[[str, int, int], None] | None:
    if progress is None:
        return None

    def report(stage: str, done: int, total: int) -> None:
        with contextlib.suppress(Exception):  # progress is cosmetic; never fail a run because of it
            progress(done / total if total else 0.0, desc=stage)

    return report


def _download(path: Path | None) -> Any:
    return gr.DownloadButton(value=str(path) if path else None, interactive=path is not None)


def _file_paths(files: Sequence[Any] | None) -> list[str]:
    return [p if isinstance(p, str) else getattr(p, "name", str(p)) for p in (files or [])]


def _reset_values() -> list[Any]:
    """Values of :attr:`_Page.reset_outputs` when there is no reconstruction."""
    nothing = _download(None)
    return [None, gr.Dropdown(choices=frame_choices([]), value="All"), nothing, nothing, nothing, nothing, []]


def _upload_values(out: UploadOutcome, files: Any = None) -> list[Any]:
    """Values of :attr:`_Page.upload_outputs`: a refused upload also empties both upload boxes (its files are
    deleted); ``files`` (the example's frames) fills the image box."""
    choices = [(f"{i}: {name}", i) for i, name in enumerate(out.frames)]
    boxes = [files if files is not None else gr.skip(), gr.skip()] if out.ok else [None, None]
    return [
        out.state,
        out.gallery,
        out.message,
        gr.Dropdown(choices=choices, value=0 if choices else None),
        *boxes,
        *_reset_values(),
    ]


def _refusal_message(text: str, limit_bytes: int) -> str | Any:
    """The log line for files the browser refused as too large (``text``: JSON from :data:`_REFUSAL_SCRIPT`)."""
    try:
        files = [(str(f["name"]), int(f["bytes"])) for f in json.loads(text)["files"]]
    except (ValueError, KeyError, TypeError):
        return gr.skip()
    if not files:
        return gr.skip()
    listed = ", ".join(f"'{name}' ({size / 2**20:.1f} MB)" for name, size in files[:5])
    return (
        f"Upload problem: {listed} {'is' if len(files) == 1 else 'are'} over this demo's limit of "
        f"{limit_bytes / 2**20:.0f} MB per file; nothing was uploaded. Upload smaller files (a shorter or "
        "smaller video, or its frames as images)."
    )


class _Handlers:
    """The functions events call: they turn the page's values into controller calls and back."""

    def __init__(self, ctl: DemoController, keys: OwnerKeys, preload_index: int | None) -> None:
        self.ctl = ctl
        self.keys = keys
        self.preload_index = preload_index
        self.sky_available = ctl.settings.sky_model is not None

    def owner(self, request: gr.Request | None) -> str:
        """The owner key of the browser that sent ``request`` (one no browser holds when it sent no cookie)."""
        token = request.cookies.get(COOKIE) if request is not None else None
        return self.keys.key(token) or self.keys.throwaway()

    def view_of(self, conf_v, frame_v, mode_v, cam_v, sky_v, black_v, white_v) -> ViewSettings:
        return ViewSettings.from_controls(
            conf_v, frame_v, mode_v, cam_v, sky_v and self.sky_available, black_v, white_v
        )

    # ---------------------------------------------------------------------------------- uploads
    def on_upload(self, video_path, image_paths, fps_value, st, request: gr.Request, progress=gr.Progress()):  # noqa: B008
        out = self.ctl.upload(
            st,
            video_path,
            _file_paths(image_paths),
            fps_value,
            _progress_adapter(progress),
            self.owner(request),
        )
        return _upload_values(out)

    def on_fps(self, video_path, image_paths, fps_value, st, request: gr.Request, progress=gr.Progress()):  # noqa: B008
        paths = _file_paths(image_paths)
        has_video = bool(video_path) or any(is_video_path(p) for p in paths)
        if not has_video or (st or {}).get("fps") == fps_value:
            return [gr.skip()] * (6 + len(_reset_values()))  # the length of _Page.upload_outputs
        return self.on_upload(video_path, paths, fps_value, st, request, progress)

    def on_refusal(self, text):
        return _refusal_message(text or "", self.ctl.settings.max_upload_bytes)

    def on_clear(self, st, request: gr.Request):
        state = self.ctl.clear(st, self.owner(request))
        return [state, None, None, [], PROMPT, gr.Dropdown(choices=[], value=None), *_reset_values()]

    # ---------------------------------------------------------------------------------- model and views
    def on_reconstruct(self, st, ref, conf_v, mode_v, cam_v, sky_v, black_v, white_v, progress=gr.Progress()):  # noqa: B008
        try:
            view = self.view_of(conf_v, None, mode_v, cam_v, sky_v, black_v, white_v)
        except ValueError as exc:
            return _run_values(RunOutcome(False, f"Cannot reconstruct: {exc}"))
        return _run_values(self.ctl.reconstruct(st, ref, None, view, _progress_adapter(progress)))

    def on_previews(self, st):
        return self.ctl.previews(st)

    def on_colmap(self, st, conf_v, frame_v, mode_v, cam_v, sky_v, black_v, white_v):
        try:
            view = self.view_of(conf_v, frame_v, mode_v, cam_v, sky_v, black_v, white_v)
        except ValueError:
            return _download(None)
        return _download(self.ctl.colmap_zip(st, view))

    def on_view(self, st, conf_v, frame_v, mode_v, cam_v, sky_v, black_v, white_v):
        try:
            view = self.view_of(conf_v, frame_v, mode_v, cam_v, sky_v, black_v, white_v)
            out = self.ctl.view(st, view)
        except ValueError as exc:
            out = ViewOutcome(None, None, f"Cannot show this view: {exc}")
        if out.glb is None:
            return [gr.skip(), out.message, gr.skip(), gr.skip(), gr.skip()]
        colmap = _download(self.ctl.cached_colmap_zip(st, view))  # disabled until this view's zip is built
        return [str(out.glb), out.message, _download(out.glb), _download(out.ply), colmap]

    # ---------------------------------------------------------------------------------- examples
    def load_example(
        self, index: int, fps_value: float, st: dict | None, request: gr.Request | None
    ) -> list[Any]:
        out = self.ctl.load_example(st, index, fps_value, self.owner(request))
        if not out.ok:  # stops the chain (.success); the message shows as an error toast
            raise gr.Error(out.message, print_exception=False)
        return _upload_values(out, files=out.files)

    def on_example(self, index, fps_value, st, request: gr.Request):
        return self.load_example(int(index), fps_value, st, request)

    def on_preload(self, fps_value, st, request: gr.Request):
        return self.load_example(self.preload_index, fps_value, st, request)  # type: ignore[arg-type]


def _run_values(out: RunOutcome) -> list[Any]:
    """Values of :attr:`_Page.run_outputs`."""
    if not out.ok or out.view is None:
        return [gr.skip(), out.message, gr.skip(), gr.skip(), gr.skip(), gr.skip()]
    view = out.view
    return [
        str(view.glb) if view.glb else None,
        out.message,
        gr.Dropdown(choices=frame_choices(out.frames), value="All"),
        _download(view.glb),
        _download(view.ply),
        _download(out.npz),
    ]


def _show_loading() -> tuple[None, str]:
    return None, _LOADING


def _wire_uploads(page: _Page, h: _Handlers, concurrency: int) -> dict[str, Any]:
    queue = {"concurrency_id": "upload", "concurrency_limit": max(2, concurrency)}
    kwargs = {
        "inputs": [page.video, page.images, page.fps, page.state],
        "outputs": page.upload_outputs,
        **queue,
    }
    for event in (
        page.video.upload,
        page.video.clear,
        page.images.upload,
        page.images.delete,
        page.images.clear,
    ):
        event(h.on_upload, **kwargs)
    for event in (page.fps.submit, page.fps.blur):
        event(h.on_fps, trigger_mode="always_last", **kwargs)
    page.refusal.change(h.on_refusal, inputs=page.refusal, outputs=page.log, queue=False)
    return queue


def _reconstruct_chain(trigger: Callable[..., Any], page: _Page, h: _Handlers, concurrency: int) -> None:
    """``trigger`` (a click, or an example's successful load) -> the model -> previews -> COLMAP zip."""
    model = {"concurrency_id": "model", "concurrency_limit": concurrency}
    (
        trigger(_show_loading, outputs=[page.viewer, page.log], queue=False)
        .then(h.on_reconstruct, inputs=page.run_inputs, outputs=page.run_outputs, **model)
        .then(h.on_previews, inputs=page.state, outputs=page.previews, **_export_queue(concurrency))
        .then(h.on_colmap, inputs=page.view_inputs, outputs=page.dl_colmap, **_COLMAP_QUEUE)
    )


def _export_queue(concurrency: int) -> dict[str, Any]:
    return {"concurrency_id": "export", "concurrency_limit": max(2, 2 * concurrency)}


# COLMAP zips build in the background, one at a time, so that they never delay a view change.
_COLMAP_QUEUE = {"concurrency_id": "colmap", "concurrency_limit": 1, "show_progress": "hidden"}


def _wire_views(page: _Page, h: _Handlers, concurrency: int) -> None:
    view = {
        "inputs": page.view_inputs,
        "outputs": page.view_outputs,
        "trigger_mode": "always_last",
        "show_progress": "minimal",
        **_export_queue(concurrency),
    }
    controls = (page.conf.release, page.frame.input, page.mode.input)
    toggles = (page.show_cam.input, page.sky.input, page.black.input, page.white.input)
    for event in (*controls, *toggles):
        event(h.on_view, **view).then(
            h.on_colmap, inputs=page.view_inputs, outputs=page.dl_colmap, **_COLMAP_QUEUE
        )


def _wire_clear(page: _Page, h: _Handlers) -> None:
    page.clear_btn.click(
        h.on_clear,
        inputs=page.state,
        outputs=[
            page.state,
            page.video,
            page.images,
            page.gallery,
            page.log,
            page.reference,
            *page.reset_outputs,
        ],
        queue=False,
    )


def _wire_examples(demo: gr.Blocks, page: _Page, h: _Handlers, upload_queue: dict[str, Any]) -> list[Any]:
    """The examples table's clicks and the preloaded example; returns their events."""
    events = []
    if page.examples is not None:
        inputs = [page.examples, page.fps, page.state]
        events.append(
            page.examples.click(h.on_example, inputs=inputs, outputs=page.upload_outputs, **upload_queue)
        )
    if h.preload_index is not None:
        inputs = [page.fps, page.state]
        events.append(demo.load(h.on_preload, inputs=inputs, outputs=page.upload_outputs, **upload_queue))
    return events


def _build_ui(ctl: DemoController, keys: OwnerKeys, n_examples: int, preload_index: int | None) -> gr.Blocks:
    concurrency = ctl.settings.concurrency
    expire_s = int(ctl.settings.expire_seconds)
    with gr.Blocks(
        title="vggtkit demo", analytics_enabled=False, delete_cache=(min(3600, expire_s), expire_s)
    ) as demo:
        page = _layout(ctl, n_examples)
        handlers = _Handlers(ctl, keys, preload_index)
        upload_queue = _wire_uploads(page, handlers, concurrency)
        _reconstruct_chain(page.run_btn.click, page, handlers, concurrency)
        _wire_views(page, handlers, concurrency)
        _wire_clear(page, handlers)
        for event in _wire_examples(demo, page, handlers, upload_queue):
            _reconstruct_chain(event.success, page, handlers, concurrency)
    return demo


# --------------------------------------------------------------------------------------------------- serve
def launch_demo(
    demo: gr.Blocks,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    prevent_thread_lock: bool = False,
    quiet: bool = False,
) -> str:
    """Serve the demo: bound to ``host`` (127.0.0.1 unless told otherwise), never shared through gradio's
    tunnel, every response through :class:`~vggtkit.app.guard.DemoGuard`, uploads bounded, old sessions
    deleted periodically.

    Args:
        demo: the app from :func:`build_demo`.
        host: address to listen on.
        port: port (None: gradio's default, 7860 or the next free one).
        prevent_thread_lock: return at once (the server keeps running; gradio's own start-up lines are not
            printed).
        quiet: print nothing.

    Returns:
        The local URL.

    Raises:
        OSError: the port cannot be listened on.
    """
    ctl: DemoController = demo.vggtkit  # type: ignore[attr-defined]
    serving = _serving(demo)
    guard = Middleware(DemoGuard, policy=serving.policy, keys=serving.keys)
    try:
        url = _launch(demo, host, port, prevent_thread_lock, quiet, guard)
    except BaseException:
        demo.close(verbose=False)
        raise
    interval = min(600.0, ctl.settings.expire_seconds / 4)
    serving.janitor = Periodic(interval, lambda: _clean_up(ctl, serving.policy), "vggtkit-expiry").start()
    return url


def _launch(
    demo: gr.Blocks, host: str, port: int | None, prevent_thread_lock: bool, quiet: bool, guard: Middleware
) -> str:
    ctl: DemoController = demo.vggtkit  # type: ignore[attr-defined]
    _, url, _ = demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        prevent_thread_lock=prevent_thread_lock,
        quiet=quiet or prevent_thread_lock,
        max_file_size=ctl.settings.max_upload_bytes,
        show_error=False,
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        enable_monitoring=False,
        app_kwargs={"middleware": [guard], "openapi_url": None},
        head=_REFUSAL_SCRIPT,
        # Skips gradio's start-up request to its own page: with a 3 s timeout it fails on a busy machine and then
        # refuses to start unless the app is shared publicly, which this demo never is.
        _frontend=False,
    )
    return url


def _clean_up(ctl: DemoController, policy: FilePolicy) -> None:
    ctl.expire_sessions()
    policy.forget_missing()


def shutdown_demo(demo: gr.Blocks, grace_s: float = 10.0) -> bool:
    """Stop the demo: refuse new work, stop the server, wait up to ``grace_s`` seconds for running operations,
    then delete the temporary work folder (a folder given to :func:`build_demo` is kept) and the uploads.

    Returns:
        True when no operation was left running (False: a reconstruction is still inside the model's forward
        pass; it saves nothing when it ends).
    """
    ctl: DemoController = demo.vggtkit  # type: ignore[attr-defined]
    serving = _serving(demo)
    ctl.stop()
    if serving.janitor is not None:
        serving.janitor.stop()
    demo.close(verbose=False)
    idle = ctl.wait_idle(grace_s)
    if serving.temporary_root is not None:
        serving.policy.delete_uploads(serving.policy.uploads())
        shutil.rmtree(serving.temporary_root, ignore_errors=True)
    return idle
