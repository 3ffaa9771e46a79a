"""The execution plan of a forward pass, and the planner that fits it to the inputs, the device and a budget.

A model's ``forward`` runs one code path; an :class:`ExecutionPlan` says how: precision, which aggregator layers
to keep for the heads, chunk sizes, whether activations are updated in place, row bands of the dense heads.
:meth:`ExecutionPlan.reference` is the plain plan (every layer kept, no chunking, float32, nothing in place), the
test oracle; :func:`plan_inference` turns :class:`~vggtkit.inference.options.InferenceOptions` into a lean plan.

Memory estimate behind ``max_memory`` (bytes, for B sequences of S frames of H x W pixels, P tokens per frame,
width C, ``c``/``s``/``h`` bytes per element of the compute, stored-layer and head dtypes):

* persistent for the whole call: the kept layers ``L * B*S*P*2C * s`` (L = 4 for the released heads), the outputs
  ``24 * B*S*H*W`` (dense maps and confidences in float32), the token stream ``B*S*P*C * 4`` and global
  attention's keys and values ``2 * S*P*C * c``;
* the largest transient of one stage: a frame chunk of ``f`` frames in the patch embedder or frame attention
  needs about ``f*P*C * (4 + 2c)`` plus a token chunk of ``t`` tokens ``t*C * (6c + 16)`` (queries, attention
  output) plus an MLP pass of as many tokens ``4*t*C * c`` (its hidden layer); a dense-head chunk of ``d`` frames
  needs about ``d * (4*F*(4H/p)*(4W/p) + r*W*(F+32)) * h`` bytes (F = the head's features: the fusion maps at 4x
  the patch grid, then a band of ``r`` output rows of the maps at 8x the grid and at full size).

``max_memory`` bounds the weights plus this estimate; chunk sizes are the largest that fit. Without it a stage may
use 256 MiB on a CPU (a dense-head band about 160 MiB), or what the GPU has free. Python and the torch runtime
(about 0.3 GB) come on top.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from vggtkit.inference.options import InferenceOptions
from vggtkit.utils.dtypes import REDUCED_DTYPES
from vggtkit.utils.memory import format_bytes

DEFAULT_TOKEN_CHUNK = 2048  # queries per attention pass and tokens per MLP pass on CPUs: ~120 MB at C=1024
DEFAULT_WORKSPACE_BYTES = 256 * 2**20  # transient memory one stage may use on a CPU
# On CPUs the full-resolution stages of a dense head run in bands of output rows of about this size (two bands of
# a 518x392 VGGT-1B frame in float32) instead of maps of the whole frame; small bands are slow (ten bands of a
# 518x518 frame cost about 25 % of a head's time, two about 3 %).
DEFAULT_HEAD_BAND_BYTES = 160 * 2**20
MAX_HEAD_CHUNK = 8  # frames per dense-head pass on GPUs (the official default)
# On CPUs one frame per dense-head pass: larger passes were not faster there and make the heads' memory grow
# with the frame count.
MAX_HEAD_CHUNK_CPU = 1
GPU_FREE_MEMORY_SHARE = 0.9  # of the free device memory a plan may count on when no budget is given
REFERENCE_HEAD_CHUNK = 8  # frames per dense-head pass of the official code


@dataclass(frozen=True)
class ModelDims:
    """What the planner needs to know of a model.

    Attributes:
        patch_size: pixels per patch side.
        special_tokens: tokens per frame before the patch tokens (camera and registers).
        embed_dim: width C of the aggregator's token stream.
        kept_layers: aggregator layers the heads read (or all, when every layer is kept).
        dense_features: feature width of the dense heads' fusion maps (0 without dense heads).
    """

    patch_size: int
    special_tokens: int
    embed_dim: int
    kept_layers: int
    dense_features: int


@dataclass(frozen=True)
class ExecutionPlan:
    """How one forward pass runs. No setting changes the result beyond float rounding, except the precisions.

    Attributes:
        dtype: precision of the aggregator's matrix products and attention (the residual stream stays float32).
        heads_dtype: precision of the dense heads' convolutions.
        store_dtype: precision of the kept aggregator layers.
        keep_all_layers: keep every aggregator layer (otherwise only those the heads read).
        frame_chunk: frames per pass of the patch embedder and frame attention (None: all).
        sequence_chunk: sequences per pass of global attention (None: all).
        token_chunk: queries per attention pass and tokens per MLP pass (None: all).
        head_chunk: frames per dense-head pass (None: all).
        head_rows: output rows per band of a dense head's full-resolution stages (None: all).
        channels_last: dense heads' convolutions channels-last.
        in_place: update activations in place and free intermediates at once; only without autograd.
        release_memory: give freed heap pages back to the system at the pass's peaks (CPU).
        gradient_checkpointing: recompute each block in the backward pass instead of storing its activations.
        estimated_bytes: the planner's estimate of the weights plus the pass's tensors (0: not estimated).
    """

    dtype: torch.dtype = torch.float32
    heads_dtype: torch.dtype = torch.float32
    store_dtype: torch.dtype = torch.float32
    keep_all_layers: bool = False
    frame_chunk: int | None = None
    sequence_chunk: int | None = None
    token_chunk: int | None = None
    head_chunk: int | None = REFERENCE_HEAD_CHUNK
    head_rows: int | None = None
    channels_last: bool = False
    in_place: bool = False
    release_memory: bool = False
    gradient_checkpointing: bool = False
    estimated_bytes: int = 0

    def __post_init__(self) -> None:
        for name in ("frame_chunk", "sequence_chunk", "token_chunk", "head_chunk", "head_rows"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"ExecutionPlan.{name} must be a positive integer or None, got {value!r}")
        if self.in_place and self.gradient_checkpointing:
            raise ValueError("gradient checkpointing is for training; in-place plans run without autograd")

    @classmethod
    def reference(cls) -> ExecutionPlan:
        """The plain plan, as the official code runs: every layer kept, no chunking, float32, nothing in place."""
        return cls(keep_all_layers=True)


def _nbytes(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


@dataclass(frozen=True)
class _Sizes:
    B: int
    S: int
    H: int
    W: int
    P: int
    dims: ModelDims

    @property
    def C(self) -> int:
        return self.dims.embed_dim


def _persistent_bytes(z: _Sizes, c: int, s: int) -> int:
    frames = z.B * z.S
    kept = z.dims.kept_layers * frames * z.P * 2 * z.C * s
    outputs = 24 * frames * z.H * z.W
    return kept + outputs + frames * z.P * z.C * 4 + 2 * z.S * z.P * z.C * c


def _token_chunk_bytes(z: _Sizes, t: int, c: int) -> int:
    return t * z.C * (6 * c + 16) + 4 * t * z.C * c


def _frame_chunk_bytes(z: _Sizes, f: int, c: int) -> int:
    return f * z.P * z.C * (4 + 2 * c)


def _dpt_band_bytes(z: _Sizes, d: int, h: int, rows: int) -> int:
    return d * rows * z.W * (z.dims.dense_features + 32) * h


def _dpt_chunk_bytes(z: _Sizes, d: int, h: int, rows: int) -> int:
    F, p = z.dims.dense_features, z.dims.patch_size
    if not F:
        return 0
    fused = 4 * F * (4 * z.H // p) * (4 * z.W // p)
    return d * fused * h + _dpt_band_bytes(z, d, h, rows)


@dataclass(frozen=True)
class _Bytes:
    """Bytes per element of the compute (c), stored-layer (s) and head (h) dtypes."""

    c: int
    s: int
    h: int


def plan_inference(
    dims: ModelDims,
    images_shape: tuple[int, ...],
    options: InferenceOptions,
    device: torch.device,
    weights_bytes: int = 0,
    *,
    autograd: bool = False,
    available_bytes: int | None = None,
) -> ExecutionPlan:
    """The plan of one forward pass over images of shape (B, S, 3, H, W).

    Args:
        dims: the model's sizes (see :class:`ModelDims`).
        options: what the caller asked for.
        weights_bytes: memory the model's parameters take (counted against ``max_memory``).
        autograd: gradients are recorded: nothing runs in place, and nothing is chunked unless asked (autograd
            stores every chunk's activations anyway, so chunks would cost time and save no memory).
        available_bytes: free device memory (GPUs), the budget when ``max_memory`` is not given.

    Raises:
        ValueError: ``max_memory`` is smaller than the weights plus the smallest possible working set.
    """
    if options.reference_path:
        return ExecutionPlan.reference()
    B, S, _, H, W = images_shape
    z = _Sizes(B, S, H, W, dims.special_tokens + (H // dims.patch_size) * (W // dims.patch_size), dims)
    nb = _Bytes(
        _nbytes(options.dtype), _nbytes(options.effective_store_dtype), _nbytes(options.effective_heads_dtype)
    )
    if autograd:
        return _autograd_plan(options, nb)
    gpu = device.type != "cpu"
    workspace = _workspace(z, nb, options, weights_bytes, available_bytes if gpu else None)
    token_chunk = _token_chunk(z, nb, options, workspace, gpu)
    frame_chunk, head_chunk = _frame_chunks(z, nb, options, workspace, token_chunk, gpu)
    head_rows = _head_rows(z, nb, options, workspace, head_chunk)
    estimated = (
        weights_bytes
        + _persistent_bytes(z, nb.c, nb.s)
        + max(
            _frame_chunk_bytes(z, frame_chunk, nb.c) + _token_chunk_bytes(z, token_chunk or S * z.P, nb.c),
            _dpt_chunk_bytes(z, head_chunk, nb.h, head_rows),
        )
    )
    channels_last = options.channels_last
    if channels_last is None:  # measured faster on CPUs in both precisions, and on an H200 in bfloat16
        channels_last = not gpu or options.effective_heads_dtype in REDUCED_DTYPES
    release_memory = options.release_memory
    if release_memory is None:  # float32 heads: the maps whose freed pages are worth giving back
        release_memory = nb.h == 4
    return ExecutionPlan(
        dtype=options.dtype,
        heads_dtype=options.effective_heads_dtype,
        store_dtype=options.effective_store_dtype,
        frame_chunk=frame_chunk,
        sequence_chunk=1,
        token_chunk=token_chunk,
        head_chunk=head_chunk,
        head_rows=head_rows,
        channels_last=bool(channels_last),
        in_place=True,
        release_memory=not gpu and release_memory,
        estimated_bytes=int(estimated),
    )


def _autograd_plan(options: InferenceOptions, nb: _Bytes) -> ExecutionPlan:
    chunk = options.frame_chunk_size
    return ExecutionPlan(
        dtype=options.dtype,
        heads_dtype=options.effective_heads_dtype,
        store_dtype=options.effective_store_dtype,
        frame_chunk=chunk,
        token_chunk=options.query_chunk_size,
        head_chunk=chunk or REFERENCE_HEAD_CHUNK,
        channels_last=bool(options.channels_last),
    )


def _workspace(
    z: _Sizes, nb: _Bytes, options: InferenceOptions, weights_bytes: int, available_bytes: int | None
) -> int:
    """Bytes one stage may use besides the weights and the persistent tensors."""
    persistent = _persistent_bytes(z, nb.c, nb.s)
    if options.max_memory is None:
        if available_bytes is None:
            return DEFAULT_WORKSPACE_BYTES
        return max(int(available_bytes * GPU_FREE_MEMORY_SHARE) - persistent, DEFAULT_WORKSPACE_BYTES)
    workspace = options.max_memory - weights_bytes - persistent
    smallest = max(
        _frame_chunk_bytes(z, 1, nb.c) + _token_chunk_bytes(z, 256, nb.c), _dpt_chunk_bytes(z, 1, nb.h, 1)
    )
    minimum = weights_bytes + persistent + smallest
    if workspace <= 0 or options.max_memory < minimum:
        raise ValueError(
            f"max_memory={format_bytes(options.max_memory)} is too small for {z.B * z.S} frame(s) of "
            f"{z.H}x{z.W}: the weights take {format_bytes(weights_bytes)} and the forward pass needs at least "
            f"{format_bytes(minimum - weights_bytes)} more; raise it to {format_bytes(minimum, up=True)} or more, "
            "use fewer or smaller frames, or dtype='bfloat16'"
        )
    return workspace


def _token_chunk(z: _Sizes, nb: _Bytes, options: InferenceOptions, workspace: int, gpu: bool) -> int | None:
    """Queries per attention pass: all of them on GPUs when they fit (SDPA's flash and memory-efficient kernels
    need no quadratic memory), else the largest power-of-two chunk up to 2048 whose transients fit."""
    if options.query_chunk_size is not None:
        return options.query_chunk_size
    if gpu and _token_chunk_bytes(z, z.S * z.P, nb.c) <= workspace / 2:
        return None
    token_chunk = DEFAULT_TOKEN_CHUNK
    while token_chunk > 256 and _token_chunk_bytes(z, token_chunk, nb.c) > workspace / 2:
        token_chunk //= 2
    return token_chunk


def _frame_chunks(
    z: _Sizes, nb: _Bytes, options: InferenceOptions, workspace: int, token_chunk: int | None, gpu: bool
) -> tuple[int, int]:
    """(frames per patch-embedder / frame-attention pass, frames per dense-head pass)."""
    frames = z.B * z.S
    if options.frame_chunk_size is not None:
        chunk = min(options.frame_chunk_size, frames)
        return chunk, chunk

    def largest(cost: Callable[[int], int], limit: int) -> int:
        n = 1
        while n < min(frames, limit) and cost(n + 1) <= workspace:
            n += 1
        return n

    # Frame attention runs its MLP on all tokens of a chunk at once: about one token chunk of frames.
    frame_limit = frames if token_chunk is None else max(1, token_chunk // z.P)
    frame_chunk = largest(
        lambda n: _frame_chunk_bytes(z, n, nb.c) + _token_chunk_bytes(z, n * z.P, nb.c), frame_limit
    )
    head_chunk = largest(  # frames whose whole maps fit: bands only shrink a pass of few frames
        lambda n: _dpt_chunk_bytes(z, n, nb.h, z.H), MAX_HEAD_CHUNK if gpu else MAX_HEAD_CHUNK_CPU
    )
    return frame_chunk, head_chunk


def _head_rows(z: _Sizes, nb: _Bytes, options: InferenceOptions, workspace: int, head_chunk: int) -> int:
    """Output rows per dense-head band: bands of equal height within the band budget."""
    left = workspace - _dpt_chunk_bytes(z, head_chunk, nb.h, 0)  # what the pass leaves of the workspace
    if options.max_memory is not None:
        band_budget = left
    elif workspace > DEFAULT_WORKSPACE_BYTES:  # a GPU's free memory
        band_budget = max(DEFAULT_HEAD_BAND_BYTES, left)
    else:
        band_budget = DEFAULT_HEAD_BAND_BYTES
    fitting_rows = max(1, band_budget // max(1, _dpt_band_bytes(z, head_chunk, nb.h, 1)))
    return -(-z.H // -(-z.H // fitting_rows))
