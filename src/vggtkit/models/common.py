"""Pieces both model families share: input checks and normalisation, the per-frame special tokens, running a block
by a plan, the layer store that keeps only what the heads read, progress ticks, and the family interface
(:class:`FamilyModel`: planning, strict checkpoint loading and saving)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
import torch.utils.checkpoint
from torch import Tensor, nn

from vggtkit.inference import (
    ExecutionPlan,
    InferenceOptions,
    ModelDims,
    as_options,
    plan_inference,
    weights_nbytes,
)
from vggtkit.layers import Block, RopeTables
from vggtkit.utils.memory import free_device_memory
from vggtkit.weights import Checkpoint, build_config, load_checkpoint, load_strict, save_pretrained

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_images(images: Tensor) -> Tensor:
    """(..., 3, H, W) RGB in [0, 1] -> ImageNet-normalised, in the images' dtype."""
    # Constants rather than buffers: nothing to keep out of the state dict or to re-create after a meta load.
    mean = torch.tensor(IMAGENET_MEAN, device=images.device, dtype=images.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device, dtype=images.dtype).view(3, 1, 1)
    return (images - mean) / std


def fill_special_tokens_(tokens: Tensor, camera_token: Tensor, register_token: Tensor) -> None:
    """Write each frame's camera and register tokens into tokens (B, S, P, C): slot 0 of the learned (1, 2, n, C)
    tokens for the first frame of every sequence, slot 1 for the other frames."""
    R = register_token.shape[2]
    tokens[:, 0, 0] = camera_token[0, 0, 0]
    tokens[:, 1:, 0] = camera_token[0, 1, 0]
    tokens[:, 0, 1 : 1 + R] = register_token[0, 0]
    tokens[:, 1:, 1 : 1 + R] = register_token[0, 1]


@contextlib.contextmanager
def float32_arithmetic(device: torch.device, plan: ExecutionPlan) -> Iterator[None]:
    """Inside, a float32 plan computes in float32 on CUDA: TF32 (PyTorch's default for convolutions, and an option
    for matrix products) is off for the call and restored after. Reduced-precision plans keep PyTorch's settings,
    as the official code's float32 heads do under its autocast."""
    if device.type != "cuda" or plan.dtype != torch.float32:
        yield
        return
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (cudnn.allow_tf32, matmul.allow_tf32)
    cudnn.allow_tf32 = matmul.allow_tf32 = False
    try:
        yield
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = saved


def run_block(
    block: Block, x: Tensor, rope: RopeTables | None, plan: ExecutionPlan, batch_chunk: int | None = None
) -> Tensor:
    """``block`` on x (B, N, C) as the plan says: its precision, token chunks and in-place updates, and gradient
    checkpointing when the plan asks for it and gradients are recorded."""
    kwargs = dict(
        dtype=plan.dtype, token_chunk=plan.token_chunk, batch_chunk=batch_chunk, in_place=plan.in_place
    )
    if plan.gradient_checkpointing and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(block, x, rope, use_reentrant=False, **kwargs)
    return block(x, rope, **kwargs)


class LayerStore:
    """The aggregator outputs the heads read: ``depth`` entries of (B, S, P, 2C), None where not kept.

    Output i concatenates the frame-block-i and the second-kind-block-i results along channels; each half is
    written into a preallocated buffer of the plan's store dtype as soon as its block has run.
    """

    def __init__(self, depth: int, keep: set[int], shape: tuple[int, int, int, int], plan: ExecutionPlan,
                 device: torch.device) -> None:  # fmt: skip
        self.keep = keep
        self.shape = shape
        self.dtype = plan.store_dtype
        self.device = device
        self.outputs: list[Tensor | None] = [None] * depth

    def slot(self, idx: int, half: int) -> Tensor:
        """The (B, S, P, C) half ``half`` (0: frame block, 1: the other) of output ``idx``, allocated on first use."""
        if self.outputs[idx] is None:
            B, S, P, C = self.shape
            self.outputs[idx] = torch.empty(B, S, P, 2 * C, device=self.device, dtype=self.dtype)
        C = self.shape[-1]
        return self.outputs[idx][..., half * C : (half + 1) * C]

    def store(self, idx: int, half: int, tokens: Tensor) -> None:
        """Copy the token stream (B, S, P, C) into output ``idx`` when it is kept."""
        if idx in self.keep:
            self.slot(idx, half).copy_(tokens)


# ----------------------------------------------------------------------------- inputs
def check_images(images: Tensor, patch_size: int, whole_patches: bool) -> Tensor:
    """Validate the public image input and give it a batch axis: (S, 3, H, W) or (B, S, 3, H, W) -> (B, S, 3, H, W).

    Args:
        images: RGB frames in [0, 1].
        patch_size: pixels per patch side.
        whole_patches: H and W must be multiples of the patch size (VGGT); otherwise the rows and columns beyond
            the last whole patch are ignored, and H and W need only hold one patch (VGGT-Omega).

    Raises:
        ValueError: the wrong type, rank, channel count or dtype, too small or ragged frames, values outside [0, 1].
    """
    if not isinstance(images, Tensor):
        raise ValueError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim == 4:
        images = images.unsqueeze(0)
    if images.ndim != 5:
        raise ValueError(
            f"images must have shape (S, 3, H, W) or (B, S, 3, H, W), got {tuple(images.shape)}; "
            "stack frames along a new first axis"
        )
    if images.shape[2] != 3:
        raise ValueError(
            f"images must have 3 colour channels (RGB) on axis -3, got shape {tuple(images.shape)}"
        )
    H, W = images.shape[-2:]
    if whole_patches and (H % patch_size or W % patch_size or H == 0 or W == 0):
        raise ValueError(
            f"image height and width must be positive multiples of the patch size {patch_size}, got {H}x{W}; "
            "resize or crop them (vggtkit.load_and_preprocess_images does this)"
        )
    if min(H, W) < patch_size:
        raise ValueError(
            f"images of {H}x{W} pixels hold no whole {patch_size}x{patch_size} patch; give frames at least "
            f"{patch_size} pixels high and wide"
        )
    if images.shape[1] == 0:
        raise ValueError("images holds no frame; pass at least one")
    if not images.is_floating_point():
        raise ValueError(
            f"images must be floating point in [0, 1], got dtype {images.dtype}; divide uint8 by 255"
        )
    lo, hi = images.min().item(), images.max().item()
    if lo < 0 or hi > 1:
        raise ValueError(
            f"image values must lie in [0, 1], got min {lo:.4g} and max {hi:.4g}; "
            "pass un-normalised RGB scaled to [0, 1] (the model applies ImageNet normalisation itself)"
        )
    return images


def progress_counter(total: int, progress: Callable[[int, int], None] | None) -> Callable[[], None]:
    """A tick() that reports (done, total) steps to ``progress`` (when given) each time it is called."""
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    return tick


# ----------------------------------------------------------------------------- the family interface
_Model = TypeVar("_Model", bound="FamilyModel")


class FamilyModel(nn.Module):
    """What every model family shares: planning a forward pass, and strict loading and saving of checkpoints.

    A family sets ``config_class`` and implements :meth:`dims` (the sizes the planner needs) and
    :meth:`default_config` (the configuration of a checkpoint that comes without a config.json).
    """

    config_class: ClassVar[type]
    config: Any

    def dims(self, keep_all_layers: bool = False) -> ModelDims:
        """The sizes the planner needs (see :class:`~vggtkit.inference.ModelDims`)."""
        raise NotImplementedError

    @classmethod
    def default_config(cls, checkpoint: Checkpoint) -> Any:
        """The configuration of ``checkpoint`` when it has no config.json (a released default)."""
        raise NotImplementedError

    def plan(
        self,
        images: Tensor,
        options: InferenceOptions | ExecutionPlan | str | torch.dtype | None = None,
        keep_all_layers: bool = False,
    ) -> ExecutionPlan:
        """The execution plan of a forward pass over ``images`` (B, S, 3, H, W).

        An :class:`ExecutionPlan` is used as given. Options (None: float32, or the dtype of an enabled ambient
        autocast) are planned for these inputs and this device by :func:`~vggtkit.inference.plan_inference`:
        without autograd, a lean plan (only the layers the heads read, chunks that fit the memory budget, in-place
        updates); with autograd, nothing in place and no chunking unless asked.

        Raises:
            ValueError: an in-place plan while gradients are recorded, float16 on a CPU, or a budget too small.
        """
        opts = as_options(options)
        if isinstance(opts, ExecutionPlan):
            plan = opts
        else:
            if opts is None:
                device_type = images.device.type
                autocast = torch.is_autocast_enabled(device_type)
                opts = InferenceOptions(
                    dtype=torch.get_autocast_dtype(device_type) if autocast else torch.float32
                )
            opts.check_device(images.device)
            plan = plan_inference(
                self.dims(keep_all_layers), tuple(images.shape), opts, images.device, weights_nbytes(self),
                autograd=torch.is_grad_enabled(), available_bytes=free_device_memory(images.device),
            )  # fmt: skip
        if keep_all_layers and not plan.keep_all_layers:
            plan = dataclasses.replace(plan, keep_all_layers=True)
        if plan.in_place and torch.is_grad_enabled():
            raise ValueError(
                "this execution plan updates activations in place, which autograd cannot record: run the model "
                "under torch.no_grad() or torch.inference_mode(), or use a plan with in_place=False"
            )
        return plan

    @classmethod
    def from_checkpoint(
        cls: type[_Model],
        checkpoint: Checkpoint,
        config: Any | None = None,
        map_location: str | torch.device = "cpu",
    ) -> _Model:
        """The model of a read checkpoint, loaded strictly. The config is, in order: ``config``, the checkpoint's
        ``config.json``, or :meth:`default_config` (official checkpoints come without one)."""
        if config is None:
            config = (
                cls.default_config(checkpoint)
                if checkpoint.config is None
                else build_config(cls.config_class, checkpoint.config, str(checkpoint.config_path))
            )
        return load_strict(lambda: cls(config), checkpoint, map_location)

    @classmethod
    def from_pretrained(
        cls: type[_Model],
        source: str | Path,
        *,
        config: Any | None = None,
        map_location: str | torch.device = "cpu",
        cache_dir: str | Path | None = None,
        revision: str | None = None,
        local_files_only: bool | None = None,
    ) -> _Model:
        """Load a model strictly from a bundled name, a local folder, a weights file or a Hugging Face hub id
        (see :func:`vggtkit.weights.resolve_checkpoint`); returns it in eval mode."""
        checkpoint = load_checkpoint(source, map_location, cache_dir, revision, local_files_only)
        return cls.from_checkpoint(checkpoint, config, map_location)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (Hugging Face layout) into ``directory``."""
        return save_pretrained(self, directory)
