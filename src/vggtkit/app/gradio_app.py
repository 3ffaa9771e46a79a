"""The gradio 6 web demo: every control of the official ``demo_gradio.py`` plus downloads, run statistics,
depth / confidence previews, a reference-frame choice, per-session folders and bounded concurrency.

``build_demo(...)`` returns the ``gr.Blocks``; ``launch_demo(demo, ...)`` serves it on 127.0.0.1 (never
``share=True``) with file serving limited to the app's own folder. The controller that does the work is
``demo.vggtkit`` (its ``runner.model_runs`` counts forward passes).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import gradio as gr

from vggtkit.app.controller import (
    PROMPT,
    DemoController,
    RunOutcome,
    UploadOutcome,
    ViewOutcome,
    bundled_example_dirs,
)
from vggtkit.app.engine import ModelRunner
from vggtkit.app.settings import BRANCH_CHOICES, DemoSettings, ViewSettings, frame_choices
from vggtkit.io.video import is_video_path
from vggtkit.weights import BUNDLED_MODELS, DEFAULT_CHECKPOINT

__all__ = ["build_demo", "default_checkpoint", "launch_demo"]

logger = logging.getLogger(__name__)

DEMO_MODEL = "tiny-synthetic"
_INTRO = """# vggtkit: VGGT 3-D reconstruction
Upload a video (sampled at the frame rate below) or several images, check the preview, click **Reconstruct**.
The 3-D view shows the point cloud and the cameras; the controls below it change the view without running
the model again. Download the scene as GLB, the points as PLY, a COLMAP model (zip) or the raw predictions (npz).
"""
_SKY_OFF = (
    "Unavailable: start the demo with --sky-model PATH (a sky-segmentation ONNX file such as the "
    "official skyseg.onnx) to enable it."
)


def default_checkpoint() -> str:
    """``tiny-synthetic`` when the package bundles it, else ``facebook/VGGT-1B``."""
    return DEMO_MODEL if DEMO_MODEL in BUNDLED_MODELS else DEFAULT_CHECKPOINT


def _progress_adapter(progress: gr.Progress | None) -> Callable[[str, int, int], None] | None:
    if progress is None:
        return None

    def report(stage: str, done: int, total: int) -> None:
        with contextlib.suppress(Exception):  # progress is cosmetic; never fail a run because of it
            progress(done / total if total else 0.0, desc=stage)

    return report


def _download(path: Path | None) -> Any:
    return gr.DownloadButton(value=str(path) if path else None, interactive=path is not None)


def build_demo(
    model_or_checkpoint: Any = None,
    *,
    device: str = "auto",
    dtype: str = "float32",
    workdir_root: str | os.PathLike[str] | None = None,
    max_frames: int = 64,
    max_upload_mb: float = 200.0,
    concurrency: int = 1,
    sky_model: str | os.PathLike[str] | None = None,
    examples: Sequence[str | os.PathLike[str]] | Literal["bundled"] | None = "bundled",
    resolution: int = 518,
    default_fps: float = 1.0,
    queue_size: int = 20,
    preload: str | os.PathLike[str] | None = None,
) -> gr.Blocks:
    """Build the web demo around one model.

    Args:
        model_or_checkpoint: a ``vggtkit.VGGT`` or anything ``VGGT.from_pretrained`` takes (default:
            :func:`default_checkpoint`). Loaded once, shared by every session.
        device: "auto", "cpu", "cuda", "cuda:N" or "mps".
        dtype: "float32", "bfloat16" or "float16".
        workdir_root: the folder for every file the app writes and serves (default: a new temporary folder,
            removed when the process exits).
        max_frames: most frames per reconstruction (images plus sampled video frames).
        max_upload_mb: most megabytes per upload.
        concurrency: reconstructions running at the same time; others wait in the queue.
        sky_model: a sky-segmentation ONNX file; enables "Filter Sky".
        examples: folders of example scenes, "bundled" (the scenes in ``vggtkit/assets/example``) or None.
        resolution: model input width in pixels (multiple of 14).
        default_fps: initial video sampling rate.
        queue_size: most requests waiting in the queue.
        preload: a folder of images loaded and reconstructed when a page opens (``vggtkit demo --example``).

    Returns:
        The ``gr.Blocks`` app (queue configured); ``demo.vggtkit`` is its :class:`DemoController`.

    Raises:
        ValueError: bad settings, a checkpoint that cannot be loaded, or an example folder without images.
    """
    if workdir_root is None:
        root = Path(tempfile.mkdtemp(prefix="vggtkit-demo-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
    else:
        root = Path(workdir_root)
    settings = DemoSettings(
        workdir_root=root,
        device=device,
        dtype=dtype,
        resolution=resolution,
        max_frames=max_frames,
        max_upload_mb=max_upload_mb,
        concurrency=concurrency,
        queue_size=queue_size,
        default_fps=default_fps,
        sky_model=Path(sky_model) if sky_model else None,
    )
    example_dirs = [
        Path(p).expanduser().resolve()
        for p in (bundled_example_dirs() if examples == "bundled" else list(examples or []))
    ]
    all_dirs = list(example_dirs)
    preload_index = None
    if preload is not None:
        preload_dir = Path(preload).expanduser().resolve()
        if preload_dir not in all_dirs:
            all_dirs.append(preload_dir)
        preload_index = all_dirs.index(preload_dir)
    runner = ModelRunner(
        model_or_checkpoint if model_or_checkpoint is not None else default_checkpoint(),
        device=device,
        dtype=dtype,
        resolution=resolution,
    )
    controller = DemoController(settings, runner, all_dirs)
    demo = _build_ui(controller, n_examples=len(example_dirs), preload_index=preload_index)
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.concurrency)
    demo.vggtkit = controller  # type: ignore[attr-defined]
    return demo


def _build_ui(ctl: DemoController, n_examples: int, preload_index: int | None) -> gr.Blocks:
    settings = ctl.settings
    sky_available = settings.sky_model is not None
    with gr.Blocks(title="vggtkit demo", analytics_enabled=False, delete_cache=(3600, 86400)) as demo:
        state = gr.State(None, delete_callback=ctl.release)
        gr.Markdown(_INTRO)
        with gr.Row():
            with gr.Column(scale=2):
                video = gr.Video(
                    label="Upload Video", sources=["upload"], interactive=True, elem_id="input-video"
                )
                fps = gr.Number(
                    value=settings.default_fps,
                    label="Video frames per second",
                    minimum=0.01,
                    maximum=60,
                    step=0.5,
                    elem_id="video-fps",
                    info="Frames sampled from the video per second of video (the original demo: 1).",
                )
                images = gr.File(
                    file_count="multiple", label="Upload Images", interactive=True, elem_id="input-images"
                )
                gallery = gr.Gallery(
                    label="Preview",
                    columns=4,
                    height=300,
                    show_label=True,
                    elem_id="preview",
                    object_fit="contain",
                    interactive=False,
                )
            with gr.Column(scale=4):
                log = gr.Textbox(
                    value=PROMPT, label="Log", lines=3, max_lines=8, interactive=False, elem_id="log"
                )
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
                        choices=frame_choices([]),
                        value="All",
                        label="Show Points from Frame",
                        elem_id="frame-filter",
                        interactive=True,
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
                with gr.Row():
                    dl_glb = gr.DownloadButton("Download GLB", interactive=False, elem_id="download-glb")
                    dl_ply = gr.DownloadButton("Download PLY", interactive=False, elem_id="download-ply")
                    dl_colmap = gr.DownloadButton(
                        "Download COLMAP (zip)", interactive=False, elem_id="download-colmap"
                    )
                    dl_npz = gr.DownloadButton(
                        "Download predictions.npz", interactive=False, elem_id="download-npz"
                    )
                previews = gr.Gallery(
                    label="Depth and confidence",
                    columns=6,
                    height=260,
                    elem_id="depth-previews",
                    object_fit="contain",
                    interactive=False,
                )
        examples = None
        if n_examples:
            rows = [[str(ex.frames[0]), ex.name, len(ex.frames)] for ex in ctl.examples[:n_examples]]
            examples = gr.Dataset(
                components=["image", "textbox", "number"],
                samples=rows,
                type="index",
                headers=["Preview", "Scene", "Frames"],
                layout="table",
                label="Examples",
                elem_id="examples",
            )

        view_inputs = [state, conf, frame, mode, show_cam, sky, black, white]
        reset_outputs = [viewer, frame, dl_glb, dl_ply, dl_colmap, dl_npz, previews]

        def reset_values() -> list[Any]:
            return [
                None,
                gr.Dropdown(choices=frame_choices([]), value="All"),
                _download(None),
                _download(None),
                _download(None),
                _download(None),
                [],
            ]

        def upload_outputs(out: UploadOutcome) -> list[Any]:
            choices = [(f"{i}: {name}", i) for i, name in enumerate(out.frames)]
            return [
                out.state,
                out.gallery,
                out.message,
                gr.Dropdown(choices=choices, value=0 if choices else None),
                *reset_values(),
            ]

        upload_targets = [state, gallery, log, reference, *reset_outputs]

        def on_upload(video_path, image_paths, fps_value, st, progress=gr.Progress()):  # noqa: B008
            paths = [p if isinstance(p, str) else getattr(p, "name", str(p)) for p in (image_paths or [])]
            return upload_outputs(ctl.upload(st, video_path, paths, fps_value, _progress_adapter(progress)))

        upload_kwargs_base = {"concurrency_id": "upload", "concurrency_limit": max(2, settings.concurrency)}
        upload_kwargs = {
            "inputs": [video, images, fps, state],
            "outputs": upload_targets,
            **upload_kwargs_base,
        }
        for event in (video.upload, video.clear, images.upload, images.delete, images.clear):
            event(on_upload, **upload_kwargs)

        def on_fps(video_path, image_paths, fps_value, st, progress=gr.Progress()):  # noqa: B008
            paths = [p if isinstance(p, str) else getattr(p, "name", str(p)) for p in (image_paths or [])]
            has_video = bool(video_path) or any(is_video_path(p) for p in paths)
            if not has_video or (st or {}).get("fps") == fps_value:
                return [gr.skip()] * len(upload_targets)
            return on_upload(video_path, paths, fps_value, st, progress)

        for event in (fps.submit, fps.blur):
            event(on_fps, trigger_mode="always_last", **upload_kwargs)

        def view_of(conf_v, frame_v, mode_v, cam_v, sky_v, black_v, white_v) -> ViewSettings:
            return ViewSettings.from_controls(
                conf_v, frame_v, mode_v, cam_v, sky_v and sky_available, black_v, white_v
            )

        def run_outputs(out: RunOutcome) -> list[Any]:
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

        run_targets = [viewer, log, frame, dl_glb, dl_ply, dl_npz]

        def on_reconstruct(st, ref, conf_v, mode_v, cam_v, sky_v, black_v, white_v, progress=gr.Progress()):  # noqa: B008
            try:
                view = view_of(conf_v, None, mode_v, cam_v, sky_v, black_v, white_v)
            except ValueError as exc:
                return run_outputs(RunOutcome(False, f"Cannot reconstruct: {exc}"))
            return run_outputs(ctl.reconstruct(st, ref, "crop", view, _progress_adapter(progress)))

        def on_colmap(st, conf_v, frame_v, mode_v, cam_v, sky_v, black_v, white_v):
            try:
                view = view_of(conf_v, frame_v, mode_v, cam_v, sky_v, black_v, white_v)
            except ValueError:
                return _download(None)
            return _download(ctl.colmap_zip(st, view))

        def on_previews(st):
            return ctl.previews(st)

        def on_view(st, conf_v, frame_v, mode_v, cam_v, sky_v, black_v, white_v):
            try:
                view = view_of(conf_v, frame_v, mode_v, cam_v, sky_v, black_v, white_v)
                out = ctl.view(st, view)
            except ValueError as exc:
                out = ViewOutcome(None, None, f"Cannot show this view: {exc}")
            if out.glb is None:
                return [gr.skip(), out.message, gr.skip(), gr.skip(), gr.skip()]
            colmap = _download(
                ctl.cached_colmap_zip(st, view)
            )  # disabled until the zip for this view is built
            return [str(out.glb), out.message, _download(out.glb), _download(out.ply), colmap]

        def on_clear(st):
            return [
                ctl.clear(st),
                None,
                None,
                [],
                PROMPT,
                gr.Dropdown(choices=[], value=None),
                *reset_values(),
            ]

        def show_loading():
            return None, "Loading and Reconstructing..."

        model_kwargs = {"concurrency_id": "model", "concurrency_limit": settings.concurrency}
        export_kwargs = {"concurrency_id": "export", "concurrency_limit": max(2, 2 * settings.concurrency)}
        # COLMAP zips build in the background, one at a time, never delaying a view change.
        colmap_kwargs = {"concurrency_id": "colmap", "concurrency_limit": 1, "show_progress": "hidden"}
        run_inputs = [state, reference, conf, mode, show_cam, sky, black, white]
        (
            run_btn.click(show_loading, outputs=[viewer, log], queue=False)
            .then(on_reconstruct, inputs=run_inputs, outputs=run_targets, **model_kwargs)
            .then(on_previews, inputs=state, outputs=previews, **export_kwargs)
            .then(on_colmap, inputs=view_inputs, outputs=dl_colmap, **colmap_kwargs)
        )
        clear_btn.click(
            on_clear,
            inputs=state,
            outputs=[state, video, images, gallery, log, reference, *reset_outputs],
            queue=False,
        )

        view_targets = [viewer, log, dl_glb, dl_ply, dl_colmap]
        view_kwargs = {
            "inputs": view_inputs,
            "outputs": view_targets,
            "trigger_mode": "always_last",
            "show_progress": "minimal",
            **export_kwargs,
        }
        for event in (
            conf.release,
            frame.input,
            mode.input,
            show_cam.input,
            sky.input,
            black.input,
            white.input,
        ):
            (
                event(on_view, **view_kwargs).then(
                    on_colmap, inputs=view_inputs, outputs=dl_colmap, **colmap_kwargs
                )
            )

        def load_example(index: int, fps_value: float, st: dict | None) -> list[Any]:
            out = ctl.load_example(st, index, fps_value)
            if not out.ok:  # stops the chain below (.success); the message shows as an error toast
                raise gr.Error(out.message, print_exception=False)
            return [out.files, *upload_outputs(out)]

        def on_example_click(index, fps_value, st):
            return load_example(int(index), fps_value, st)

        def on_preload(fps_value, st):
            return load_example(preload_index, fps_value, st)

        example_events = []
        if examples is not None:
            example_events.append(
                examples.click(
                    on_example_click,
                    inputs=[examples, fps, state],
                    outputs=[images, *upload_targets],
                    **upload_kwargs_base,
                )
            )
        if preload_index is not None:
            example_events.append(
                demo.load(
                    on_preload, inputs=[fps, state], outputs=[images, *upload_targets], **upload_kwargs_base
                )
            )
        for event in example_events:
            (
                event.success(show_loading, outputs=[viewer, log], queue=False)
                .then(on_reconstruct, inputs=run_inputs, outputs=run_targets, **model_kwargs)
                .then(on_previews, inputs=state, outputs=previews, **export_kwargs)
                .then(on_colmap, inputs=view_inputs, outputs=dl_colmap, **colmap_kwargs)
            )
    return demo


def launch_demo(
    demo: gr.Blocks,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    prevent_thread_lock: bool = False,
    quiet: bool = False,
) -> str:
    """Serve the demo: bound to ``host`` (127.0.0.1 unless told otherwise), never shared through gradio's
    tunnel, files served only from the app's work folder (and gradio's upload folder), uploads bounded.

    Args:
        demo: the app from :func:`build_demo`.
        host: address to listen on.
        port: port (None: gradio's default, 7860 or the next free one).
        prevent_thread_lock: return at once (the server keeps running; ``demo.block_thread()`` waits, and
            gradio's own start-up lines are not printed).
        quiet: print nothing.

    Returns:
        The local URL.
    """
    ctl: DemoController = demo.vggtkit  # type: ignore[attr-defined]
    settings = ctl.settings
    _, url, _ = demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        prevent_thread_lock=prevent_thread_lock,
        quiet=quiet or prevent_thread_lock,
        allowed_paths=[str(settings.workdir_root)],
        max_file_size=settings.max_upload_bytes,
        show_error=False,
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        enable_monitoring=False,
    )
    return url
