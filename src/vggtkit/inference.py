"""How VGGT runs at inference: precision, chunking, memory budget, and the plain reference path.

``VGGT.forward(images, options=...)`` takes an :class:`InferenceOptions` (or just a dtype name). Two paths exist:

* the **fast path** (default): keeps only the aggregator layers the heads read, frees everything else as soon as it
  is used, runs the patch embedder, frame attention and the DPT heads in chunks of frames, computes attention and
  the MLPs in chunks of tokens (so global attention's memory is linear in the token count) and the DPT heads'
  full-resolution stages in bands of rows, gives freed heap pages back to the system where its peaks are (CPU with
  float32 heads, :mod:`vggtkit.utils.memory`), and can compute in bfloat16/float16. In float32 its outputs match the
  reference path to float32 rounding (well inside the golden tolerances).
* the **reference path** (:meth:`InferenceOptions.reference`): the plain code, written like the official
  implementation: every aggregator layer kept, no chunking, float32. Tests use it as the oracle for the fast path,
  and ``vggtkit bench`` measures against it.

Memory estimate used by ``max_memory`` (bytes, for B sequences of S frames of H x W pixels, P tokens per frame,
width C, ``c``/``s``/``h`` bytes per element of the compute, stored-layer and head dtypes):

* persistent for the whole call: the kept layers ``L * B*S*P*2C * s`` (L = 4 for the released heads), the outputs
  ``24 * B*S*H*W`` (depth, points, confidences in float32), the token stream ``B*S*P*C * 4`` and global
  attention's keys and values ``2 * S*P*C * c``;
* the largest transient of one stage: a frame chunk of ``f`` frames in the patch embedder or frame attention
  needs about ``f*P*C * (4 + 2c)`` plus a token chunk of ``t`` tokens ``t*C * (6c + 16)`` (queries, attention
  output) plus an MLP pass of as many tokens ``4*t*C * c`` (its hidden layer); a DPT chunk of ``d`` frames
  needs about ``d * (4*F*(4H/p)*(4W/p) + r*W*(F+32)) * h`` bytes (F = ``dpt_features``: the fusion maps at 4x
  the patch grid, then a band of ``r`` output rows of the maps at 8x the grid and at full size; about 190 MB for
  one 518x392 frame of VGGT-1B in float32 with the default bands of 196 rows).

``max_memory`` bounds the weights plus this estimate; chunk sizes are the largest that fit (frame attention also
stops at about one token chunk of frames, ``t // P``, and a DPT pass at 8 frames). Without ``max_memory`` a stage
may use 256 MiB, and a DPT band about 160 MiB. Python and the torch runtime (about 0.3 GB) come on top; measured
peaks are in the README.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from vggtkit.models.vggt.config import VGGTConfig
    from vggtkit.models.vggt.model import VGGT

from vggtkit.utils.dtypes import REDUCED_DTYPES, dtype_name, parse_dtype
from vggtkit.utils.memory import format_bytes, parse_memory

logger = logging.getLogger(__name__)

# Defaults of the automatic chunk sizes (used when neither the chunk sizes nor max_memory are given).
DEFAULT_TOKEN_CHUNK = 2048  # queries per attention pass and tokens per MLP pass: ~120 MB at C=1024
DEFAULT_WORKSPACE_BYTES = 256 * 2**20  # transient memory one stage may use
# The full-resolution stages of a DPT head run in bands of output rows of about this size (two bands of a
# 518x392 or 518x518 VGGT-1B frame in float32) instead of 0.2 GB maps of the whole frame. Small bands are slow:
# measured on one 518x518 frame, two bands cost about 3% of a head's time, ten about 25%.
DEFAULT_HEAD_BAND_BYTES = 160 * 2**20
MAX_AUTO_HEAD_CHUNK = 8  # frames per DPT pass on GPUs (the official default)
# On CPUs one frame per DPT pass: larger passes were slower there (tiny, 8 frames: 6.1-6.4 s with 1 vs 7.8-8.2 s
# with 8) and make the heads' memory grow with the frame count.
MAX_AUTO_HEAD_CHUNK_CPU = 1


@dataclass(frozen=True)
class InferenceOptions:
    """Precision, chunking and memory of one VGGT forward pass. Strings are accepted for every dtype.

    Attributes:
        dtype: compute precision of the aggregator (patch embedder and attention blocks): float32 (default,
            matches the reference path), bfloat16 (fast on CPUs with AMX and on recent GPUs) or float16 (GPUs).
            The residual stream stays float32, as under the official code's autocast.
        heads_dtype: compute precision of the DPT heads (depth, points, track features); None means float32 (the
            default, as the official code). The tracker always runs in float32, and the camera head (one token per
            frame, bound by reading its weights) in the dtype of its weights.
        store_layers_dtype: precision of the kept aggregator layers between the aggregator and the heads; None
            means float32 when ``dtype`` is float32, otherwise ``dtype`` (halves their memory).
        frame_chunk_size: frames per pass of the patch embedder, frame attention and DPT heads. None picks it
            from ``max_memory`` (or a 256 MiB workspace).
        query_chunk_size: tokens per pass of attention (queries against all keys) and of the MLPs. None picks
            2048 (fewer when ``max_memory`` is tight).
        max_memory: budget in bytes (or a string like '8GB') for the weights plus the estimated tensors of the
            forward pass; chunk sizes are chosen to fit it. See the module docstring for the estimate.
        weights_dtype: if set, :func:`prepare_model` (and :func:`infer`) convert the aggregator's weights (and
            the heads' when ``heads_dtype`` is the same reduced dtype) to it in place, halving their memory.
        channels_last: run the DPT heads' convolutions channels-last; None: on for CPUs (faster there, by about
            1.2x in float32 and 2x in bfloat16) and for reduced precision on GPUs.
        release_memory: give freed heap pages back to the system before the last aggregator layer and before
            each DPT pass and band (:mod:`vggtkit.utils.memory`), so less freed memory stays resident at the peak (8
            frames of 518x392 with VGGT-1B in float32: 0.15 GB lower), at the cost of faulting those pages in
            again (measured: 10 % of a float32 DPT head, 7 % of a bfloat16 one). None: on for CPUs when the heads
            run in float32, whose maps are twice as large; no effect on GPUs.
        reference_path: the plain path used as the test oracle (every layer kept, no chunking, float32). Use
            :meth:`reference` to build it.
    """

    dtype: torch.dtype | str = torch.float32
    heads_dtype: torch.dtype | str | None = None
    store_layers_dtype: torch.dtype | str | None = None
    frame_chunk_size: int | None = None
    query_chunk_size: int | None = None
    max_memory: int | float | str | None = None
    weights_dtype: torch.dtype | str | None = None
    channels_last: bool | None = None
    release_memory: bool | None = None
    reference_path: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "dtype", parse_dtype(self.dtype, "dtype"))
        for name in ("heads_dtype", "store_layers_dtype", "weights_dtype"):
            if getattr(self, name) is not None:
                set_(self, name, parse_dtype(getattr(self, name), name))
        for name in ("frame_chunk_size", "query_chunk_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        if self.max_memory is not None:
            set_(self, "max_memory", parse_memory(self.max_memory, "max_memory"))
        if self.weights_dtype is not None and self.weights_dtype == torch.float32:
            set_(self, "weights_dtype", None)
        if self.reference_path:
            changed = [
                f.name
                for f in dataclasses.fields(self)
                if f.name not in ("reference_path", "dtype") and getattr(self, f.name) is not None
            ]
            if self.dtype != torch.float32 or changed:
                raise ValueError(
                    "the reference path is plain float32 without chunking; "
                    f"do not combine it with other options (got dtype={dtype_name(self.dtype)}, {changed})"
                )

    @classmethod
    def reference(cls) -> InferenceOptions:
        """The plain path (every aggregator layer kept, no chunking, float32), as the official code runs."""
        return cls(reference_path=True)

    @property
    def effective_heads_dtype(self) -> torch.dtype:
        return self.heads_dtype or torch.float32

    @property
    def effective_store_dtype(self) -> torch.dtype:
        return self.store_layers_dtype or self.dtype

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (dtype names as strings)."""
        out = dataclasses.asdict(self)
        for name in ("dtype", "heads_dtype", "store_layers_dtype", "weights_dtype"):
            out[name] = dtype_name(out[name])
        return out


def as_options(value: InferenceOptions | str | torch.dtype | None) -> InferenceOptions | None:
    """Normalise the ``options`` argument of ``VGGT.forward``: a dtype name or torch.dtype is a shorthand."""
    if value is None or isinstance(value, InferenceOptions):
        return value
    if isinstance(value, str | torch.dtype):
        return InferenceOptions(dtype=value)
    raise ValueError(
        f"options must be an InferenceOptions, a dtype name ('float32', 'bfloat16', 'float16') or None, "
        f"got {type(value).__name__}"
    )


# ----------------------------------------------------------------------------- execution plan
@dataclass(frozen=True)
class ExecutionPlan:
    """Resolved settings of one fast-path call (chunk sizes in frames; ``token_chunk`` in tokens per attention and
    MLP pass, ``head_rows`` in output rows of a DPT band)."""

    dtype: torch.dtype
    heads_dtype: torch.dtype
    store_dtype: torch.dtype
    embed_chunk: int
    frame_chunk: int
    head_chunk: int
    token_chunk: int
    head_rows: int
    channels_last: bool
    release_memory: bool
    estimated_bytes: int


def _nbytes(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


@dataclass(frozen=True)
class _Sizes:
    B: int
    S: int
    H: int
    W: int
    P: int
    C: int
    n_keep: int
    dpt_features: int
    patch: int
    has_dpt: bool


def _persistent_bytes(z: _Sizes, c: int, s: int) -> int:
    frames = z.B * z.S
    kept = z.n_keep * frames * z.P * 2 * z.C * s
    outputs = 24 * frames * z.H * z.W
    return kept + outputs + frames * z.P * z.C * 4 + 2 * z.S * z.P * z.C * c


def _token_chunk_bytes(z: _Sizes, t: int, c: int) -> int:
    return t * z.C * (6 * c + 16) + 4 * t * z.C * c


def _frame_chunk_bytes(z: _Sizes, f: int, c: int) -> int:
    return f * z.P * z.C * (4 + 2 * c)


def _dpt_band_bytes(z: _Sizes, d: int, h: int, rows: int) -> int:
    return d * rows * z.W * (z.dpt_features + 32) * h


def _dpt_chunk_bytes(z: _Sizes, d: int, h: int, rows: int) -> int:
    if not z.has_dpt:
        return 0
    fused = 4 * z.dpt_features * (4 * z.H // z.patch) * (4 * z.W // z.patch)
    return d * fused * h + _dpt_band_bytes(z, d, h, rows)


def plan_inference(
    config: VGGTConfig,
    images_shape: tuple[int, ...],
    options: InferenceOptions,
    device: torch.device,
    weights_bytes: int = 0,
    n_keep: int | None = None,
) -> ExecutionPlan:
    """Choose the chunk sizes of a fast-path call for images of shape (B, S, 3, H, W).

    Raises:
        ValueError: ``max_memory`` is smaller than the weights plus the smallest possible working set.
    """
    B, S, _, H, W = images_shape
    p = config.patch_size
    P = config.patch_start_idx + (H // p) * (W // p)
    sizes = _Sizes(
        B, S, H, W, P, config.embed_dim, len(config.head_layers) if n_keep is None else n_keep,
        config.dpt_features, p, config.enable_depth or config.enable_point or config.enable_track,
    )  # fmt: skip
    c, s, h = (
        _nbytes(options.dtype),
        _nbytes(options.effective_store_dtype),
        _nbytes(options.effective_heads_dtype),
    )
    frames = B * S
    persistent = _persistent_bytes(sizes, c, s)
    if options.max_memory is not None:
        workspace = options.max_memory - weights_bytes - persistent
        minimum = (
            weights_bytes
            + persistent
            + max(
                _frame_chunk_bytes(sizes, 1, c) + _token_chunk_bytes(sizes, 256, c),
                _dpt_chunk_bytes(sizes, 1, h, 1),
            )
        )
        if workspace <= 0 or options.max_memory < minimum:
            raise ValueError(
                f"max_memory={format_bytes(options.max_memory)} is too small for {frames} frame(s) of {H}x{W}: "
                f"the weights take {format_bytes(weights_bytes)} and the forward pass needs at least "
                f"{format_bytes(minimum - weights_bytes)} more; raise it to {format_bytes(minimum, up=True)} or "
                "more, use fewer or smaller frames, or dtype='bfloat16'"
            )
    else:
        workspace = DEFAULT_WORKSPACE_BYTES

    token_chunk = options.query_chunk_size or DEFAULT_TOKEN_CHUNK
    if options.query_chunk_size is None:
        while token_chunk > 256 and _token_chunk_bytes(sizes, token_chunk, c) > workspace / 2:
            token_chunk //= 2
    # The MLPs run in passes of a whole token chunk: half as many tokens per pass made the float32 patch embedder
    # about 3 % slower, to save half a hidden layer (17 MB for VGGT-1B) at the aggregator's peak, below the heads'.

    def largest(cost: Callable[[int], int], limit: int) -> int:
        n = 1
        while n < min(frames, limit) and cost(n + 1) <= workspace:
            n += 1
        return n

    if options.frame_chunk_size is not None:
        frame_chunk = embed_chunk = head_chunk = min(options.frame_chunk_size, frames)
    else:
        # Frame attention runs its MLP on all tokens of a chunk at once: about one token chunk of frames.
        frame_chunk = largest(
            lambda n: _frame_chunk_bytes(sizes, n, c) + _token_chunk_bytes(sizes, n * P, c),
            max(1, token_chunk // P),
        )
        embed_chunk = frame_chunk
        head_chunk = largest(  # frames whose whole maps fit: bands only shrink a pass of few frames
            lambda n: _dpt_chunk_bytes(sizes, n, h, H),
            MAX_AUTO_HEAD_CHUNK_CPU if device.type == "cpu" else MAX_AUTO_HEAD_CHUNK,
        )
    band_budget = DEFAULT_HEAD_BAND_BYTES
    if options.max_memory is not None:  # what the DPT pass leaves of the budget
        band_budget = workspace - _dpt_chunk_bytes(sizes, head_chunk, h, 0)
    fitting_rows = max(1, band_budget // max(1, _dpt_band_bytes(sizes, head_chunk, h, 1)))
    head_rows = -(-H // -(-H // fitting_rows))  # bands of equal height
    estimated = (
        weights_bytes
        + persistent
        + max(
            _frame_chunk_bytes(sizes, frame_chunk, c) + _token_chunk_bytes(sizes, token_chunk, c),
            _dpt_chunk_bytes(sizes, head_chunk, h, head_rows),
        )
    )
    channels_last = options.channels_last
    if channels_last is None:  # measured faster on CPUs in both precisions; on GPUs for tensor cores
        channels_last = device.type == "cpu" or options.effective_heads_dtype in REDUCED_DTYPES
    release_memory = options.release_memory
    if release_memory is None:  # float32 heads: the maps whose freed pages are worth giving back
        release_memory = h == 4
    return ExecutionPlan(
        dtype=options.dtype,
        heads_dtype=options.effective_heads_dtype,
        store_dtype=options.effective_store_dtype,
        embed_chunk=embed_chunk,
        frame_chunk=frame_chunk,
        head_chunk=head_chunk,
        token_chunk=token_chunk,
        head_rows=head_rows,
        channels_last=bool(channels_last),
        release_memory=device.type == "cpu" and release_memory,
        estimated_bytes=int(estimated),
    )


def check_device_dtype(options: InferenceOptions, device: torch.device) -> None:
    """float16 is a GPU precision: reject it on CPU with the fix."""
    if device.type == "cpu":
        for name in ("dtype", "heads_dtype", "store_layers_dtype", "weights_dtype"):
            if getattr(options, name) == torch.float16:
                raise ValueError(
                    f"{name}=float16 is for GPUs and is very slow or unsupported on CPU; "
                    "use bfloat16 on CPU (fast on CPUs with AMX/AVX-512 BF16)"
                )


# ----------------------------------------------------------------------------- model helpers
def weights_nbytes(model: torch.nn.Module) -> int:
    """Bytes held by the model's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


def prepare_model(model: VGGT, options: InferenceOptions) -> VGGT:
    """Apply ``options.weights_dtype`` in place: convert the aggregator's parameters (and the heads', when
    ``heads_dtype`` is the same dtype) to it. A no-op when ``weights_dtype`` is None or already applied.

    Returns the model. The conversion is one-way; reload the model to get float32 weights back.
    """
    dtype = options.weights_dtype
    if dtype is None:
        return model
    parts: list[torch.nn.Module] = [model.aggregator]
    if options.effective_heads_dtype == dtype:
        parts += [m for m in (model.camera_head, model.depth_head, model.point_head) if m is not None]
        if model.track_head is not None:
            parts.append(model.track_head.feature_extractor)
    for part in parts:
        part.to(dtype)
    return model


def infer(
    model: VGGT,
    images: torch.Tensor,
    query_points: torch.Tensor | None = None,
    options: InferenceOptions | str | torch.dtype | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run ``model`` for inference: moves the inputs to the model's device, applies ``weights_dtype``, runs
    under ``torch.inference_mode`` and returns the prediction dict of ``VGGT.forward``.

    Args:
        images: (S, 3, H, W) or (B, S, 3, H, W) RGB in [0, 1].
        query_points: optional (N, 2) or (B, N, 2) pixels in frame 0 for the track head.
        options: :class:`InferenceOptions`, a dtype name ('float32', 'bfloat16', 'float16') or None (fast float32).
        progress: called with (done, total) steps as the aggregator blocks and heads finish.
    """
    opts = as_options(options) or InferenceOptions()
    device = next(model.parameters()).device
    prepare_model(model, opts)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            if isinstance(images, torch.Tensor):
                images = images.to(device)
            if isinstance(query_points, torch.Tensor):
                query_points = query_points.to(device)
            return model(images, query_points, options=opts, progress=progress)
    finally:
        model.train(was_training)
