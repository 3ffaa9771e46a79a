"""What a caller may ask of a forward pass: precision, chunk sizes and a memory budget.

:class:`InferenceOptions` is the user-facing request; :func:`vggtkit.inference.plan.plan_inference` turns it into an
:class:`~vggtkit.inference.plan.ExecutionPlan` for given inputs and device.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from vggtkit.utils.dtypes import dtype_name, parse_dtype
from vggtkit.utils.memory import parse_memory

_DTYPE_FIELDS = ("heads_dtype", "store_layers_dtype", "weights_dtype")


@dataclass(frozen=True)
class InferenceOptions:
    """Precision, chunking and memory of one forward pass. Strings are accepted for every dtype.

    Attributes:
        dtype: compute precision of the aggregator (patch embedder and attention blocks): float32 (default),
            bfloat16 (fast on CPUs with AMX and on recent GPUs) or float16 (GPUs). The residual stream stays
            float32, as under the official code's autocast.
        heads_dtype: compute precision of the dense heads (depth, points, track features); None means float32
            (the default, as the official code). The tracker always runs in float32, and the camera head (one
            token per frame, bound by reading its weights) in the dtype of its weights.
        store_layers_dtype: precision of the kept aggregator layers between the aggregator and the heads; None
            means float32 when ``dtype`` is float32, otherwise ``dtype`` (halves their memory).
        frame_chunk_size: frames per pass of the patch embedder, frame attention and dense heads. None picks it
            from ``max_memory`` (or a 256 MiB workspace).
        query_chunk_size: tokens per pass of attention (queries against all keys) and of the MLPs. None picks
            2048 (fewer when ``max_memory`` is tight).
        max_memory: budget in bytes (or a string like '8GB') for the weights plus the estimated tensors of the
            forward pass; chunk sizes are chosen to fit it (see :mod:`vggtkit.inference.plan`).
        weights_dtype: if set, :func:`vggtkit.inference.infer` converts the aggregator's weights (and the heads'
            when ``heads_dtype`` is the same reduced dtype) to it in place, halving their memory.
        channels_last: run the dense heads' convolutions channels-last; None: on for CPUs (faster there in both
            precisions) and for reduced-precision heads on GPUs (faster on an H200, with less memory).
        release_memory: give freed heap pages back to the system before the last aggregator layer and before
            each dense-head pass and band (:func:`vggtkit.utils.memory.release_free_memory`), so less freed memory
            stays resident at the peak, at the cost of faulting those pages in again. None: on for CPUs when the
            heads run in float32, whose maps are twice as large; never on GPUs.
        reference_path: the plain plan used as the test oracle (every aggregator layer kept, no chunking,
            float32); build it with :meth:`reference`.
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
        self._parse_dtypes()
        for name in ("frame_chunk_size", "query_chunk_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        if self.max_memory is not None:
            object.__setattr__(self, "max_memory", parse_memory(self.max_memory, "max_memory"))
        if self.reference_path:
            self._check_reference()

    def _parse_dtypes(self) -> None:
        object.__setattr__(self, "dtype", parse_dtype(self.dtype, "dtype"))
        for name in _DTYPE_FIELDS:
            if getattr(self, name) is not None:
                object.__setattr__(self, name, parse_dtype(getattr(self, name), name))
        if self.weights_dtype == torch.float32:
            object.__setattr__(self, "weights_dtype", None)

    def _check_reference(self) -> None:
        changed = [
            f.name
            for f in dataclasses.fields(self)
            if f.name not in ("reference_path", "dtype") and getattr(self, f.name) is not None
        ]
        if self.dtype != torch.float32 or changed:
            raise ValueError(
                "the reference plan is plain float32 without chunking; "
                f"do not combine it with other options (got dtype={dtype_name(self.dtype)}, {changed})"
            )

    @classmethod
    def reference(cls) -> InferenceOptions:
        """The plain plan (every aggregator layer kept, no chunking, float32), as the official code runs."""
        return cls(reference_path=True)

    @property
    def effective_heads_dtype(self) -> torch.dtype:
        return self.heads_dtype or torch.float32

    @property
    def effective_store_dtype(self) -> torch.dtype:
        return self.store_layers_dtype or self.dtype

    def check_device(self, device: torch.device) -> None:
        """float16 is a GPU precision: reject it on CPU with the fix."""
        if device.type != "cpu":
            return
        for name in ("dtype", *_DTYPE_FIELDS):
            if getattr(self, name) == torch.float16:
                raise ValueError(
                    f"{name}=float16 is for GPUs and is very slow or unsupported on CPU; "
                    "use bfloat16 on CPU (fast on CPUs with AMX/AVX-512 BF16)"
                )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (dtype names as strings)."""
        out = dataclasses.asdict(self)
        for name in ("dtype", *_DTYPE_FIELDS):
            out[name] = dtype_name(out[name])
        return out
