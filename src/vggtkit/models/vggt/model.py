"""VGGT: aggregator plus camera, depth, point and track heads, in the official state-dict layout."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from vggtkit.inference import ExecutionPlan, InferenceOptions, ModelDims
from vggtkit.layers.dpt import DenseRun
from vggtkit.models.common import FamilyModel, check_images, float32_arithmetic, progress_counter
from vggtkit.models.vggt.aggregator import Aggregator
from vggtkit.models.vggt.config import VGGTConfig
from vggtkit.models.vggt.heads import CameraHead, DPTHead, TrackHead
from vggtkit.weights import Checkpoint

logger = logging.getLogger(__name__)


def _check_inputs(
    images: Tensor, query_points: Tensor | None, patch_size: int
) -> tuple[Tensor, Tensor | None]:
    """Validate and batch the public inputs. Returns images (B, S, 3, H, W) and queries (B, N, 2) or None."""
    images = check_images(images, patch_size, whole_patches=True)
    if query_points is None:
        return images, None
    return images, _check_queries(query_points, images)


def _check_queries(query_points: Tensor, images: Tensor) -> Tensor:
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
    return query_points.to(device=images.device, dtype=torch.float32)


class VGGT(FamilyModel):
    """Visual Geometry Grounded Transformer (Wang et al., CVPR 2025).

    ``forward(images, query_points=None)`` returns a dict with the official keys:
        pose_enc (B, S, 9) and pose_enc_list (camera head iterations), depth (B, S, H, W, 1), depth_conf (B, S, H, W),
        world_points (B, S, H, W, 3), world_points_conf (B, S, H, W), images (B, S, 3, H, W) in eval mode,
        and with query points: track (B, S, N, 2), vis (B, S, N), conf (B, S, N).
    """

    config_class = VGGTConfig

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
        options: InferenceOptions | ExecutionPlan | str | torch.dtype | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, Any]:
        """Predict cameras, depth, point maps (and tracks) for every frame.

        Args:
            images: (S, 3, H, W) or (B, S, 3, H, W) RGB in [0, 1]; H, W multiples of the patch size.
            query_points: (N, 2) or (B, N, 2) pixel (x, y) in frame 0, for the track head.
            return_all_layers: keep every aggregator output and return them as ``aggregated_tokens_list``
                (debugging, parity tests); by default only the layers the heads read are kept.
            options: how to run (see :meth:`plan`): :class:`~vggtkit.inference.InferenceOptions`, a dtype name
                ('float32', 'bfloat16', 'float16'), an explicit :class:`~vggtkit.inference.ExecutionPlan`
                (``ExecutionPlan.reference()`` is the plain plan), or None for the lean float32 plan.
            progress: called with (done, total) steps: patch embedder, each block, each head.

        Raises:
            ValueError: bad inputs or options (with the fix in the message).
        """
        images, query_points = _check_inputs(images, query_points, self.config.patch_size)
        plan = self.plan(images, options, keep_all_layers=return_all_layers)
        logger.debug("execution plan: %s", plan)
        tick = self._progress_counter(query_points is not None, progress)
        # Precision is the plan's: an ambient autocast would run the heads in reduced precision.
        with torch.autocast(images.device.type, enabled=False), float32_arithmetic(images.device, plan):
            tokens, patch_start_idx = self.aggregator(images, plan, tick)
            predictions = self._run_heads(tokens, images, patch_start_idx, query_points, plan, tick)
        if return_all_layers:
            predictions["aggregated_tokens_list"] = tokens
        if not self.training:
            predictions["images"] = images
        return predictions

    def dims(self, keep_all_layers: bool = False) -> ModelDims:
        """The sizes the planner needs (see :class:`~vggtkit.inference.ModelDims`)."""
        c = self.config
        dense = c.enable_depth or c.enable_point or c.enable_track
        return ModelDims(
            patch_size=c.patch_size,
            special_tokens=c.patch_start_idx,
            embed_dim=c.embed_dim,
            kept_layers=c.depth if keep_all_layers else len(c.head_layers),
            dense_features=c.dpt_features if dense else 0,
        )

    def _progress_counter(
        self, with_tracks: bool, progress: Callable[[int, int], None] | None
    ) -> Callable[[], None]:
        """A tick() reporting (done, total) steps: patch embedder, every block, every head that runs."""
        heads = [self.camera_head, self.depth_head, self.point_head, self.track_head if with_tracks else None]
        return progress_counter(1 + 2 * self.config.depth + sum(h is not None for h in heads), progress)

    def _run_heads(
        self,
        tokens: list[Tensor | None],
        images: Tensor,
        patch_start_idx: int,
        query_points: Tensor | None,
        plan: ExecutionPlan,
        tick: Callable[[], None],
    ) -> dict[str, Any]:
        """The heads on the kept aggregator layers; every output is float32."""
        run = DenseRun(
            plan.head_chunk, plan.heads_dtype, plan.channels_last, plan.head_rows, plan.release_memory
        )
        predictions: dict[str, Any] = {}
        if self.camera_head is not None:
            pose_enc_list = self.camera_head(tokens[-1])
            predictions["pose_enc"], predictions["pose_enc_list"] = pose_enc_list[-1], pose_enc_list
            tick()
        if self.depth_head is not None:
            predictions["depth"], predictions["depth_conf"] = self.depth_head(
                tokens, images, patch_start_idx, run
            )
            tick()
        if self.point_head is not None:
            points, conf = self.point_head(tokens, images, patch_start_idx, run)
            predictions["world_points"], predictions["world_points_conf"] = points, conf
            tick()
        if self.track_head is not None and query_points is not None:
            tracks, vis, conf = self.track_head(tokens, images, patch_start_idx, query_points, run=run)
            predictions["track"], predictions["vis"], predictions["conf"] = tracks[-1], vis, conf
            predictions["track_list"] = tracks
            tick()
        return predictions

    def convert_weights(self, options: InferenceOptions) -> None:
        """Apply ``options.weights_dtype`` in place: the aggregator's parameters (and the heads', when
        ``heads_dtype`` is the same dtype) are converted to it; the tracker stays float32. A no-op when
        ``weights_dtype`` is None. The conversion is one-way: reload the model to get float32 weights back."""
        dtype = options.weights_dtype
        if dtype is None:
            return
        parts: list[nn.Module] = [self.aggregator]
        if options.effective_heads_dtype == dtype:
            parts += [m for m in (self.camera_head, self.depth_head, self.point_head) if m is not None]
            if self.track_head is not None:
                parts.append(self.track_head.feature_extractor)
        for part in parts:
            part.to(dtype)

    # ------------------------------------------------------------------ checkpoints
    @classmethod
    def default_config(cls, checkpoint: Checkpoint) -> VGGTConfig:
        """VGGT-1B's configuration: the official ``model.pt`` comes without a config.json."""
        return VGGTConfig()
