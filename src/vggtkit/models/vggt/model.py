"""VGGT: aggregator plus camera, depth, point and track heads, in the official state-dict layout."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vggtkit.inference import (
    InferenceOptions,
    as_options,
    check_device_dtype,
    plan_inference,
    weights_nbytes,
)
from vggtkit.models.vggt.aggregator import Aggregator
from vggtkit.models.vggt.config import VGGTConfig
from vggtkit.models.vggt.heads import CameraHead, DPTHead, TrackHead
from vggtkit.models.vggt.heads.dpt_fast import dpt_forward_fast

logger = logging.getLogger(__name__)
REFERENCE_DPT_CHUNK = 8  # frames per DPT pass on the reference path, as the official code


def _check_inputs(
    images: Tensor, query_points: Tensor | None, patch_size: int
) -> tuple[Tensor, Tensor | None]:
    """Validate and batch the public inputs. Returns images (B, S, 3, H, W) and queries (B, N, 2) or None."""
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
    if H % patch_size or W % patch_size or H == 0 or W == 0:
        raise ValueError(
            f"image height and width must be positive multiples of the patch size {patch_size}, got {H}x{W}; "
            "resize or crop them (vggtkit.load_and_preprocess_images does this)"
        )
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
    if query_points is not None:
        if not isinstance(query_points, Tensor):
            raise ValueError(f"query_points must be a torch.Tensor, got {type(query_points).__name__}")
        if query_points.ndim == 2:
            query_points = query_points.unsqueeze(0)
        if query_points.ndim != 3 or query_points.shape[-1] != 2:
            raise ValueError(
                f"query_points must have shape (N, 2) or (B, N, 2) as pixel (x, y) in frame 0, "
                f"got {tuple(query_points.shape)}"
            )
        if query_points.shape[0] != images.shape[0]:
            raise ValueError(
                f"query_points batch {query_points.shape[0]} does not match the image batch {images.shape[0]}"
            )
        if query_points.shape[1] == 0:
            raise ValueError("query_points is empty; pass at least one (x, y) point or None")
        query_points = query_points.to(device=images.device, dtype=torch.float32)
    return images, query_points


class VGGT(nn.Module):
    """Visual Geometry Grounded Transformer (Wang et al., CVPR 2025).

    ``forward(images, query_points=None)`` returns a dict with the official keys:
        pose_enc (B, S, 9) and pose_enc_list (camera head iterations), depth (B, S, H, W, 1), depth_conf (B, S, H, W),
        world_points (B, S, H, W, 3), world_points_conf (B, S, H, W), images (B, S, 3, H, W) in eval mode,
        and with query points: track (B, S, N, 2), vis (B, S, N), conf (B, S, N).
    """

    def __init__(self, config: VGGTConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is None:
            config = VGGTConfig(**kwargs)
        elif kwargs:
            raise ValueError(f"pass either a VGGTConfig or keyword fields, not both (got {sorted(kwargs)})")
        self.config = c = config
        dim_in = 2 * c.embed_dim
        self.aggregator = Aggregator(c)
        self.camera_head = (
            CameraHead(dim_in, c.camera_trunk_depth, c.camera_num_heads, c.mlp_ratio, c.init_values)
            if c.enable_camera
            else None
        )
        dpt = dict(
            patch_size=c.patch_size,
            features=c.dpt_features,
            out_channels=c.dpt_out_channels,
            intermediate_layer_idx=c.dpt_layers,
        )
        self.point_head = (
            DPTHead(dim_in, output_dim=4, activation="inv_log", **dpt) if c.enable_point else None
        )
        self.depth_head = DPTHead(dim_in, output_dim=2, activation="exp", **dpt) if c.enable_depth else None
        self.track_head = (
            TrackHead(
                dim_in,
                patch_size=c.patch_size,
                features=c.track_features,
                out_channels=c.dpt_out_channels,
                intermediate_layer_idx=c.dpt_layers,
                iters=c.track_iters,
                stride=c.track_stride,
                corr_levels=c.track_corr_levels,
                corr_radius=c.track_corr_radius,
                hidden_size=c.track_hidden_size,
            )
            if c.enable_track
            else None
        )

    def forward(
        self,
        images: Tensor,
        query_points: Tensor | None = None,
        return_all_layers: bool = False,
        *,
        options: InferenceOptions | str | torch.dtype | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, Any]:
        """Predict cameras, depth, point maps (and tracks) for every frame.

        Args:
            images: (S, 3, H, W) or (B, S, 3, H, W) RGB in [0, 1]; H, W multiples of the patch size.
            query_points: (N, 2) or (B, N, 2) pixel (x, y) in frame 0, for the track head.
            return_all_layers: also return every aggregator output as ``aggregated_tokens_list`` (debugging,
                parity tests); by default only the layers the heads read are kept.
            options: :class:`~vggtkit.inference.InferenceOptions` or a dtype name ('float32', 'bfloat16',
                'float16'). None: the fast float32 path in eval mode without gradients (or, under an enabled
                ``torch.autocast``, the fast path in its dtype); the reference path when training or when
                gradients are enabled, since only that path supports autograd.
            progress: called with (done, total) steps: patch embedder, each block, each head.

        Raises:
            ValueError: bad inputs or options (with the fix in the message).
        """
        images, query_points = _check_inputs(images, query_points, self.config.patch_size)
        opts = as_options(options)
        if opts is None:
            if self.training or torch.is_grad_enabled():
                return self._forward_reference(images, query_points, return_all_layers, progress=progress)
            opts = InferenceOptions()
            if torch.is_autocast_enabled(images.device.type):
                opts = InferenceOptions(dtype=torch.get_autocast_dtype(images.device.type))
        if opts.reference_path:
            return self._forward_reference(
                images, query_points, return_all_layers, keep_all=True, progress=progress
            )
        if self.training or torch.is_grad_enabled():
            raise ValueError(
                "InferenceOptions select the fast inference path, which does not record gradients: call the model "
                "in eval mode under torch.no_grad() or torch.inference_mode(), or use options=None for autograd"
            )
        return self._forward_fast(images, query_points, return_all_layers, opts, progress)

    def _progress_counter(
        self, with_tracks: bool, progress: Callable[[int, int], None] | None
    ) -> Callable[[], None]:
        """A tick() reporting (done, total) steps: patch embedder, every block, every head that runs."""
        heads = [self.camera_head, self.depth_head, self.point_head, self.track_head if with_tracks else None]
        total = 1 + 2 * self.config.depth + sum(h is not None for h in heads)
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total)

        return tick

    def _forward_reference(
        self,
        images: Tensor,
        query_points: Tensor | None,
        return_all_layers: bool,
        keep_all: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, Any]:
        """The plain path: as the official code (all layers when ``keep_all``, heads in float32, DPT chunks of 8)."""
        for name, param in self.named_parameters():
            if param.dtype != torch.float32:
                raise ValueError(
                    f"the reference path needs float32 weights, but {name} is {param.dtype}; reload the model or "
                    "use the fast path (options=InferenceOptions(...))"
                )
        keep = None if (return_all_layers or keep_all) else self.config.head_layers
        tick = self._progress_counter(query_points is not None, progress)
        tokens, patch_start_idx = self.aggregator(images, keep_layers=keep, tick=tick)
        predictions: dict[str, Any] = {}
        # The heads always run in float32, whatever autocast the caller set up (on any device type).
        with torch.autocast(device_type=images.device.type, enabled=False):
            tokens32 = [t.float() if t is not None else None for t in tokens]
            images32 = images.float()
            if self.camera_head is not None:
                pose_enc_list = self.camera_head(tokens32[-1])
                predictions["pose_enc"] = pose_enc_list[-1]
                predictions["pose_enc_list"] = pose_enc_list
                tick()
            if self.depth_head is not None:
                predictions["depth"], predictions["depth_conf"] = self.depth_head(
                    tokens32, images32, patch_start_idx, frames_chunk_size=REFERENCE_DPT_CHUNK
                )
                tick()
            if self.point_head is not None:
                pts, conf = self.point_head(
                    tokens32, images32, patch_start_idx, frames_chunk_size=REFERENCE_DPT_CHUNK
                )
                predictions["world_points"], predictions["world_points_conf"] = pts, conf
                tick()
            if self.track_head is not None and query_points is not None:
                tracks, vis, conf = self.track_head(tokens32, images32, patch_start_idx, query_points)
                predictions["track"], predictions["vis"], predictions["conf"] = tracks[-1], vis, conf
                predictions["track_list"] = tracks
                tick()
        if return_all_layers:
            predictions["aggregated_tokens_list"] = tokens
        if not self.training:
            predictions["images"] = images
        return predictions

    def _forward_fast(
        self,
        images: Tensor,
        query_points: Tensor | None,
        return_all_layers: bool,
        opts: InferenceOptions,
        progress: Callable[[int, int], None] | None,
    ) -> dict[str, Any]:
        """The fast inference path (see :mod:`vggtkit.inference`)."""
        c = self.config
        device = images.device
        check_device_dtype(opts, device)
        keep = tuple(range(c.depth)) if return_all_layers else c.head_layers
        plan = plan_inference(c, tuple(images.shape), opts, device, weights_nbytes(self), n_keep=len(keep))
        logger.debug("fast path plan: %s", plan)
        tick = self._progress_counter(query_points is not None, progress)
        with torch.autocast(device.type, enabled=False):
            tokens, patch_start_idx = self.aggregator.forward_fast(images, keep, plan, tick)
        predictions: dict[str, Any] = {}
        if self.camera_head is not None:
            # The camera head sees one token per frame: its cost is reading its weights, so it runs in the dtype
            # its weights are stored in (float32 unless ``weights_dtype`` converted them).
            camera_dtype = self.camera_head.pose_branch.fc1.weight.dtype
            with torch.autocast(device.type, enabled=False):
                pose_enc_list = self.camera_head(tokens[-1][:, :, :1].to(camera_dtype))
            predictions["pose_enc_list"] = [p.float() for p in pose_enc_list]
            predictions["pose_enc"] = predictions["pose_enc_list"][-1]
            tick()
        dpt_args = (
            tokens,
            tuple(images.shape),
            patch_start_idx,
            plan.head_chunk,
            plan.heads_dtype,
            plan.channels_last,
            plan.head_rows,
            plan.release_memory,
        )
        with torch.autocast(device.type, enabled=False):
            if self.depth_head is not None:
                predictions["depth"], predictions["depth_conf"] = dpt_forward_fast(self.depth_head, *dpt_args)
                tick()
            if self.point_head is not None:
                predictions["world_points"], predictions["world_points_conf"] = dpt_forward_fast(
                    self.point_head, *dpt_args
                )
                tick()
            if self.track_head is not None and query_points is not None:
                fmaps = dpt_forward_fast(self.track_head.feature_extractor, *dpt_args)
                tracks, vis, conf = self.track_head.tracker(
                    query_points, fmaps, self.track_head.iters, frames_chunk_size=plan.head_chunk
                )
                del fmaps
                predictions["track"], predictions["vis"], predictions["conf"] = tracks[-1], vis, conf
                predictions["track_list"] = tracks
                tick()
        if return_all_layers:
            predictions["aggregated_tokens_list"] = tokens
        del tokens
        predictions["images"] = images
        return predictions

    # ------------------------------------------------------------------ checkpoints
    @classmethod
    def from_pretrained(
        cls,
        source: str | Path,
        *,
        config: VGGTConfig | None = None,
        map_location: str | torch.device = "cpu",
        cache_dir: str | Path | None = None,
        revision: str | None = None,
        local_files_only: bool | None = None,
    ) -> VGGT:
        """Load a model strictly from a local folder, a weights file, or a Hugging Face hub repo id.

        See :func:`vggtkit.weights.load_pretrained` for the accepted sources.
        """
        from vggtkit.weights import load_pretrained

        return load_pretrained(
            cls,
            source,
            config=config,
            map_location=map_location,
            cache_dir=cache_dir,
            revision=revision,
            local_files_only=local_files_only,
        )

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (Hugging Face layout) into ``directory``."""
        from vggtkit.weights import save_pretrained

        return save_pretrained(self, directory)
