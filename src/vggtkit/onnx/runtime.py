"""An exported VGGT run by onnxruntime, called as the PyTorch model is: ``model(images, options=...)`` returns the
prediction dict of torch tensors, and ``model.config`` is the model's configuration."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vggtkit.onnx.metadata import IMAGES, METADATA_KEY, QUERY_POINTS, TRACK_OUTPUTS, OnnxModelInfo
from vggtkit.utils.dtypes import dtype_name, parse_dtype

__all__ = ["OnnxVGGT", "require_runtime"]

logger = logging.getLogger(__name__)

_CUDA_PROVIDER = "CUDAExecutionProvider"
_ALLOCATION_FAILURES = ("failed to allocate memory", "bad_alloc", "out of memory")


def require_runtime() -> Any:
    """The onnxruntime module; ImportError with the fix when it is missing."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError(
            f"running an ONNX model needs onnxruntime ({exc}); install it with pip install 'vggtkit[onnx]'"
        ) from exc
    return onnxruntime


class OnnxVGGT:
    """A model written by :func:`vggtkit.onnx.export_onnx`, run by onnxruntime.

    Attributes:
        path: the ``.onnx`` file.
        info: what the file records (configuration, image size, precision, track head).
        config: the model's :class:`~vggtkit.VGGTConfig`.
    """

    def __init__(
        self, path: str | Path, device: str | torch.device = "cpu", threads: int | None = None
    ) -> None:
        """Load ``path`` into an onnxruntime session.

        Args:
            device: 'cpu', or 'cuda' / 'cuda:N' where onnxruntime has its CUDA provider (onnxruntime-gpu;
                otherwise the CPU is used, with a warning).
            threads: threads of one operator; None: as many as torch uses.

        Raises:
            ValueError: the file is missing, not an ONNX model, or not one vggtkit exported.
            ImportError: onnxruntime is not installed.
        """
        ort = require_runtime()
        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"ONNX model {self.path} does not exist or is not a file")
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = threads or torch.get_num_threads()
        session_options.log_severity_level = 3  # errors only: its warnings are about graph fusions
        try:
            self.session = ort.InferenceSession(
                str(self.path), session_options, providers=_providers(device, ort)
            )
        except Exception as exc:  # onnxruntime raises its own exception types, none a subclass of ValueError
            raise ValueError(f"onnxruntime cannot load {self.path}: {exc}") from exc
        metadata = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if metadata is None:
            raise ValueError(f"{self.path} was not exported by vggtkit: it has no vggtkit metadata")
        self.info = OnnxModelInfo.from_json(metadata, str(self.path))
        self.config = self.info.config

    @property
    def image_hw(self) -> tuple[int, int]:
        """(height, width) of the frames the graph takes."""
        return self.info.image_hw

    def __repr__(self) -> str:
        h, w = self.image_hw
        return f"OnnxVGGT({str(self.path)!r}, {w}x{h}, {self.info.dtype}, tracks={self.info.tracks})"

    def __call__(
        self, images: Tensor, query_points: Tensor | None = None, *, options: Any = None
    ) -> dict[str, Tensor]:
        """Predict cameras, depth, point maps (and tracks) for every frame, as ``VGGT.forward`` does.

        Args:
            images: (S, 3, H, W) or (1, S, 3, H, W) RGB in [0, 1] at the graph's image size.
            query_points: (N, 2) or (1, N, 2) pixel (x, y) in frame 0, for a graph with the track head. Without
                them such a graph tracks one point at the image centre, and the tracks are not returned.
            options: accepted for the call surface of VGGT; the precision was chosen at export, so a dtype other
                than float32 (the default) or the file's own is an error.

        Returns:
            The graph's outputs as float32 CPU tensors with a batch axis of 1 (``pose_enc`` (1, S, 9), ``depth``
            (1, S, H, W, 1), ...), and ``images`` (1, S, 3, H, W).

        Raises:
            ValueError: images of another size, shape or range, queries for a graph without the track head, or a
                dtype the file does not compute in.
            MemoryError: onnxruntime could not allocate memory.
        """
        _check_dtype(options, self.info.dtype)
        batch = _frames(images, self.image_hw)
        feeds = {IMAGES: batch}
        if self.info.tracks:
            feeds[QUERY_POINTS] = _queries(query_points, self.image_hw)
        elif query_points is not None:
            raise ValueError(
                "this ONNX model has no track head; export the model with tracks to track points"
            )
        outputs = dict(zip(self.info.outputs, self._run(feeds), strict=True))
        if self.info.tracks and query_points is None:
            outputs = {k: v for k, v in outputs.items() if k not in TRACK_OUTPUTS}
        predictions = {name: torch.from_numpy(value) for name, value in outputs.items()}
        predictions["images"] = torch.from_numpy(batch)[None]
        return predictions

    def _run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return self.session.run(list(self.info.outputs), feeds)
        except Exception as exc:  # onnxruntime's exception types
            if any(text in str(exc).lower() for text in _ALLOCATION_FAILURES):
                raise MemoryError(str(exc)) from exc
            raise


def _providers(device: str | torch.device, ort: Any) -> list[Any]:
    device = torch.device(device)
    if device.type == "cuda":
        if _CUDA_PROVIDER in ort.get_available_providers():
            return [(_CUDA_PROVIDER, {"device_id": device.index or 0}), "CPUExecutionProvider"]
        logger.warning("onnxruntime has no CUDA provider here (install onnxruntime-gpu); running on the CPU")
    elif device.type != "cpu":
        logger.warning("onnxruntime runs on the CPU here, not on %s", device)
    return ["CPUExecutionProvider"]


def _frames(images: Tensor | np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """(S, 3, H, W) float32 frames from ``images`` (S, 3, H, W) or (1, S, 3, H, W), checked."""
    array = images.detach().cpu().numpy() if isinstance(images, Tensor) else np.asarray(images)
    if array.ndim == 5 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 4 or array.shape[1] != 3:
        raise ValueError(
            f"images must have shape (S, 3, H, W) or (1, S, 3, H, W) (one sequence), got {tuple(array.shape)}"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            f"images must be floating point in [0, 1], got dtype {array.dtype}; divide uint8 by 255"
        )
    H, W = image_hw
    if tuple(array.shape[-2:]) != (H, W):
        h, w = array.shape[-2:]
        raise ValueError(
            f"the ONNX model takes {W}x{H} frames (width x height), got {w}x{h}: export the model for "
            f"this size, or prepare square frames (mode='pad') for a square model"
        )
    if array.size and (array.min() < 0 or array.max() > 1):
        raise ValueError(
            f"image values must lie in [0, 1], got min {array.min():.4g} and max {array.max():.4g}; pass "
            "un-normalised RGB scaled to [0, 1]"
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def _queries(query_points: Tensor | np.ndarray | None, image_hw: tuple[int, int]) -> np.ndarray:
    """(N, 2) float32 queries; one at the image centre when there are none."""
    if query_points is None:
        H, W = image_hw
        return np.array([[(W - 1) / 2, (H - 1) / 2]], dtype=np.float32)
    array = (
        query_points.detach().cpu().numpy() if isinstance(query_points, Tensor) else np.asarray(query_points)
    )
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2 or array.shape[-1] != 2 or array.shape[0] == 0:
        raise ValueError(
            f"query_points must have shape (N, 2) or (1, N, 2) with N >= 1, as pixel (x, y) in frame 0, "
            f"got {tuple(array.shape)}"
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def _check_dtype(options: Any, file_dtype: str) -> None:
    """A dtype asked through ``options`` (InferenceOptions, a name or a torch.dtype) must be float32 or the file's."""
    dtype = getattr(options, "dtype", options)
    if dtype is None or not isinstance(dtype, (str, torch.dtype)):
        return
    name = dtype_name(parse_dtype(dtype))
    if name not in ("float32", file_dtype):
        raise ValueError(
            f"this ONNX model computes in {file_dtype}, chosen when it was exported; dtype={name!r} applies to "
            "runtime='torch'"
        )
