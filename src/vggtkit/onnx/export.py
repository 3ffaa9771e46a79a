"""Export a VGGT model to ONNX with PyTorch's ``torch.export``-based exporter: one graph per image size, taking
any number of frames (and of query points, with the track head).

The graph's image size is fixed at export. The frame count stays symbolic in the trace, but the image size does
not: the model computes the DPT heads' aspect ratio and position embeddings and the resize of the patch
embedder's position embedding from the image size as Python numbers, which ``torch.export`` (PyTorch 2.13)
cannot keep symbolic. Export one file per size the application uses.

What is traced is the reference plan (float32, no chunks, nothing in place) keeping only the aggregator layers
the heads read, with the dense heads on all frames in one pass; the float16 variant stores the aggregator's
weights in float16 and runs its matrix products, attention and kept layers in float16 (the residual stream,
LayerNorms and heads in float32), as PyTorch's float16 plan.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vggtkit.inference import ExecutionPlan, InferenceOptions
from vggtkit.models.omega import VGGTOmega
from vggtkit.models.vggt.model import VGGT
from vggtkit.onnx._tracing import traceable_model_code
from vggtkit.onnx.metadata import IMAGES, METADATA_KEY, QUERY_POINTS, OnnxModelInfo
from vggtkit.utils.atomic import atomic_path
from vggtkit.utils.dtypes import dtype_name, parse_dtype

__all__ = ["EXTERNAL_DATA_THRESHOLD", "ONNX_DTYPES", "OnnxExportOptions", "export_onnx", "require_exporter"]

logger = logging.getLogger(__name__)

ONNX_DTYPES = ("float32", "float16")
# Weights above this size go to a separate file: one ONNX (protobuf) file cannot exceed 2 GiB.
EXTERNAL_DATA_THRESHOLD = 1536 * 2**20
# Sizes of the trace's example inputs; the graph takes any count (an example count of 1 would be fixed).
EXAMPLE_FRAMES = 2
EXAMPLE_QUERIES = 3


@dataclass(frozen=True)
class OnnxExportOptions:
    """How :func:`export_onnx` exports a model.

    Attributes:
        image_hw: (height, width) of the frames the graph takes, positive multiples of the patch size; None: the
            model's ``img_size`` square (what ``mode='pad'`` prepares at the default resolution).
        dtype: 'float32' or 'float16' (the aggregator's weights, products and attention in float16; about half
            the file, for GPU execution providers).
        tracks: include the track head: input ``query_points`` (N, 2) pixels (x, y) in frame 0, outputs
            ``track``, ``vis`` and ``conf``.
        external_data: write the weights to ``<file>.data`` beside the graph; None: when they exceed 1.5 GiB
            (one ONNX file cannot exceed 2 GiB).
        optimize: fold constants and drop unused nodes (a third of the nodes go; onnxruntime applies its own
            graph optimisations when it loads the file). The exporter's full optimizer, which also rewrites
            patterns, took 3.5 times as long for the same onnxruntime speed and is not used.
    """

    image_hw: tuple[int, int] | None = None
    dtype: str = "float32"
    tracks: bool = False
    external_data: bool | None = None
    optimize: bool = True

    def __post_init__(self) -> None:
        if self.image_hw is not None:
            hw = tuple(self.image_hw)
            if len(hw) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in hw):
                raise ValueError(f"image_hw must be (height, width) in pixels, got {self.image_hw!r}")
            object.__setattr__(self, "image_hw", hw)
        name = dtype_name(parse_dtype(self.dtype))
        if name not in ONNX_DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(ONNX_DTYPES)} for an ONNX export, got {name}")
        object.__setattr__(self, "dtype", name)


def require_exporter() -> None:
    """Raise ImportError with the fix when the packages the exporter needs are missing."""
    try:
        import onnx  # noqa: F401
        import onnx_ir  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"ONNX export needs the onnx and onnxscript packages ({exc}); install them with "
            "pip install 'vggtkit[onnx]'"
        ) from exc


def export_onnx(model: nn.Module, path: str | Path, options: OnnxExportOptions | None = None) -> Path:
    """Export ``model`` to an ONNX file that onnxruntime runs (see :class:`vggtkit.onnx.OnnxVGGT`).

    The graph takes ``images`` (S, 3, H, W) RGB in [0, 1] with any frame count S and H, W fixed by
    ``options.image_hw``, and returns the model's prediction keys with their PyTorch shapes: ``pose_enc``
    (1, S, 9), ``depth`` (1, S, H, W, 1), ``depth_conf`` (1, S, H, W), ``world_points`` (1, S, H, W, 3),
    ``world_points_conf`` (1, S, H, W), the heads the model has; with ``options.tracks`` also ``query_points``
    (N, 2) in, ``track`` (1, S, N, 2), ``vis`` and ``conf`` (1, S, N) out. The file records the model's
    configuration, image size and precision. ``model`` is left unchanged.

    Args:
        model: a :class:`~vggtkit.VGGT`.
        path: the ``.onnx`` file to write (atomically; its weights may go to ``<path>.data``).
        options: image size, precision, track head, external weights.

    Returns:
        The path written.

    Raises:
        ValueError: not a VGGT model (VGGT-Omega is not exported), an image size that is not a multiple of the patch size, tracks asked of a
            model without a track head, or a path that does not end in ``.onnx``.
        ImportError: onnx or onnxscript is not installed.
    """
    options = options or OnnxExportOptions()
    info = export_info(model, options)
    path = _check_path(path)
    require_exporter()
    start = time.perf_counter()
    with _eval_mode(model):
        program = _export_program(_model_in(model, options.dtype), info, options.optimize)
    program.model.metadata_props[METADATA_KEY] = info.to_json()
    weights = sum(t.const_value.nbytes for t in program.model.graph.initializers.values() if t.const_value)
    external = weights > EXTERNAL_DATA_THRESHOLD if options.external_data is None else options.external_data
    _save(program.model, path, external)
    logger.info("exported %s in %.0f s (%.1f MB of weights%s)", path, time.perf_counter() - start,
                weights / 1e6, f" in {path.name}.data" if external else "")  # fmt: skip
    return path


def export_info(model: nn.Module, options: OnnxExportOptions) -> OnnxModelInfo:
    """The metadata an export of ``model`` with ``options`` records, after checking that they fit together.

    Raises:
        ValueError: see :func:`export_onnx`.
    """
    if isinstance(model, VGGTOmega):
        raise ValueError(
            "ONNX export supports the VGGT family; VGGT-Omega models are not exported (their graph is not "
            "traced or checked against the golden fixture): run them with PyTorch"
        )
    if not isinstance(model, VGGT):
        raise ValueError(f"ONNX export supports VGGT models, got {type(model).__name__}")
    c = model.config
    image_hw = options.image_hw or (c.img_size, c.img_size)
    if any(v % c.patch_size for v in image_hw):
        raise ValueError(
            f"the image size {image_hw[1]}x{image_hw[0]} (width x height) is not a multiple of the model's patch "
            f"size {c.patch_size}; use e.g. {_round_to(image_hw[1], c.patch_size)}x"
            f"{_round_to(image_hw[0], c.patch_size)}"
        )
    if options.tracks and not c.enable_track:
        raise ValueError("the model has no track head; export it without tracks")
    return OnnxModelInfo(config=c, image_hw=image_hw, dtype=options.dtype, tracks=options.tracks)


def _round_to(value: int, multiple: int) -> int:
    return max(multiple, round(value / multiple) * multiple)


def _check_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise ValueError(f"the output file must end in .onnx, got {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give the .onnx file to write")
    return path


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _model_in(model: VGGT, dtype: str) -> VGGT:
    """The model with its weights in the export's precision (a converted copy for float16)."""
    if dtype == "float32":
        return model
    converted = copy.deepcopy(model)
    converted.convert_weights(InferenceOptions(dtype=dtype, weights_dtype=dtype))
    return converted


def _plan(dtype: str) -> ExecutionPlan:
    """The traced plan: the reference plan with only the layers the heads read and the dense heads on all frames
    in one pass (one graph for any frame count), its products in ``dtype``."""
    reduced = parse_dtype(dtype)
    return dataclasses.replace(
        ExecutionPlan.reference(), dtype=reduced, store_dtype=reduced, keep_all_layers=False, head_chunk=None
    )


class _Traced(nn.Module):
    """The model as the graph sees it: (S, 3, H, W) images (and (N, 2) queries) in, a tuple of outputs out."""

    def __init__(self, model: VGGT, plan: ExecutionPlan, outputs: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.plan = plan
        self.outputs = outputs

    def forward(self, images: Tensor, query_points: Tensor | None = None) -> tuple[Tensor, ...]:
        queries = None if query_points is None else query_points[None]
        predictions = self.model(images[None], queries, options=self.plan)
        return tuple(predictions[name] for name in self.outputs)


def _example_inputs(info: OnnxModelInfo) -> tuple[tuple[Tensor, ...], tuple[dict[int, str], ...], list[str]]:
    """(example inputs, their dynamic axes, input names)."""
    H, W = info.image_hw
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(EXAMPLE_FRAMES, 3, H, W, generator=generator)
    if not info.tracks:
        return (images,), ({0: "frames"},), [IMAGES]
    queries = torch.rand(EXAMPLE_QUERIES, 2, generator=generator) * torch.tensor([W - 1.0, H - 1.0])
    return (images, queries), ({0: "frames"}, {0: "points"}), [IMAGES, QUERY_POINTS]


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence what the exporter reports that needs no action: a warning per constant Split the optimizer leaves to
    the runtime, the absence of torchvision's operators, and deprecations inside PyTorch."""
    loggers = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir", "torch.onnx")]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.setLevel(level)


def _export_program(model: VGGT, info: OnnxModelInfo, optimize: bool) -> Any:
    """Trace and convert: the ``torch.onnx.ONNXProgram``, checked to take any frame count."""
    args, dynamic_axes, input_names = _example_inputs(info)
    traced = _Traced(model, _plan(info.dtype), info.outputs).eval()
    with traceable_model_code(), _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            traced,
            args,
            dynamo=True,
            input_names=input_names,
            output_names=list(info.outputs),
            dynamic_shapes=dynamic_axes,
            optimize=False,
            verbose=False,
        )
        if optimize:
            _fold_constants(program.model)
    frames = program.model.graph.inputs[0].shape[0]
    if isinstance(frames, int):  # a trace that fixed the frame count: the graph would be wrong for others
        raise RuntimeError(
            f"the exported graph takes exactly {frames} frames; the trace fixed the frame count"
        )
    return program


def _fold_constants(model: Any) -> None:
    """Constant folding and removal of unused nodes on an ``onnx_ir.Model``, in place."""
    from onnxscript import optimizer

    optimizer.fold_constants_ir(model)
    optimizer.remove_unused_nodes(model)


def _save(model: Any, path: Path, external: bool) -> None:
    """Write the ONNX model (an ``onnx_ir.Model``) under a temporary name and rename it; the external weights go
    to ``<name>.data`` first, so the graph file never names weights that are not complete."""
    import onnx_ir

    data = path.with_name(path.name + ".data")
    with atomic_path(path) as tmp:
        if external:
            onnx_ir.save(model, tmp, external_data=data.name)
        else:
            onnx_ir.save(model, tmp)
    if not external:
        data.unlink(missing_ok=True)  # the weights of an earlier export to this name
