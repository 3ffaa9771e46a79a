"""VGGT-Omega: aggregator plus camera, dense (depth) and text alignment heads, in the official state-dict layout."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from vggtkit.inference import ExecutionPlan, InferenceOptions, ModelDims
from vggtkit.layers.attention import MaskedBiasLinear
from vggtkit.layers.dpt import DenseRun
from vggtkit.models.common import FamilyModel, check_images, float32_arithmetic, progress_counter
from vggtkit.models.omega.aggregator import Aggregator
from vggtkit.models.omega.config import HEAD_MLP_RATIO, VGGTOmegaConfig
from vggtkit.models.omega.heads import CameraHead, DenseHead, TextAlignmentHead
from vggtkit.weights import Checkpoint

logger = logging.getLogger(__name__)

TEXT_HEAD_PREFIX = "text_alignment_head."


class VGGTOmega(FamilyModel):
    """VGGT-Omega (facebookresearch/vggt-omega): DINOv3 patch tokens, frame and inter-frame attention with
    register-only inter-frame blocks, a single-shot camera head and a dense depth head.

    ``forward(images)`` returns a dict with the official keys, in the official order:
        camera_and_register_tokens (B, S, 1+R, 2C) (the last aggregator layer's camera and register tokens),
        pose_enc (B, S, 9), depth (B, S, H', W', 1), depth_conf (B, S, H', W') with
        (H', W') = (H // p * p, W // p * p), with the text head text_alignment_embedding (B, 2C) (unit norm) and
        text_alignment_token (B, 2C), and images (B, S, 3, H, W) in eval mode. There is no point map and no track
        head: world points come from depth and cameras (:func:`vggtkit.geometry.unproject_depth_map_to_point_map`).
    """

    config_class = VGGTOmegaConfig

    def __init__(self, config: VGGTOmegaConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is None:
            config = VGGTOmegaConfig(**kwargs)
        elif kwargs:
            raise ValueError(
                f"pass either a VGGTOmegaConfig or keyword fields, not both (got {sorted(kwargs)})"
            )
        self.config = c = config
        dim_in = 2 * c.embed_dim
        self.aggregator = Aggregator(c)
        self.camera_head = (
            CameraHead(dim_in, c.camera_trunk_depth, c.camera_num_heads, HEAD_MLP_RATIO)
            if c.enable_camera
            else None
        )
        self.dense_head = (
            DenseHead(dim_in, c.patch_size, c.dense_features, c.dense_out_channels, c.dense_layers)
            if c.enable_depth
            else None
        )
        self.text_alignment_head = (
            TextAlignmentHead(dim_in, c.text_readout_depth, c.text_num_heads, HEAD_MLP_RATIO)
            if c.enable_alignment
            else None
        )

    def forward(
        self,
        images: Tensor,
        return_all_layers: bool = False,
        *,
        options: InferenceOptions | ExecutionPlan | str | torch.dtype | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, Any]:
        """Predict cameras and depth for every frame (and a text-aligned embedding per sequence).

        Args:
            images: (S, 3, H, W) or (B, S, 3, H, W) RGB in [0, 1], at least one patch high and wide; rows and
                columns beyond the last whole patch are ignored (the depth maps cover H // p * p x W // p * p).
            return_all_layers: keep every aggregator layer and return them as ``aggregated_tokens_list``
                (debugging, parity tests); by default only the layers the heads read are kept.
            options: how to run (see :meth:`plan`): :class:`~vggtkit.inference.InferenceOptions`, a dtype name,
                an explicit :class:`~vggtkit.inference.ExecutionPlan` (``ExecutionPlan.reference()`` is the plain
                plan), or None for the lean float32 plan.
            progress: called with (done, total) steps: patch embedder, each block, each head.

        Raises:
            ValueError: bad inputs or options (with the fix in the message).
        """
        images = check_images(images, self.config.patch_size, whole_patches=False)
        plan = self.plan(images, options, keep_all_layers=return_all_layers)
        logger.debug("execution plan: %s", plan)
        heads = (self.camera_head, self.dense_head, self.text_alignment_head)
        tick = progress_counter(1 + 2 * self.config.depth + sum(h is not None for h in heads), progress)
        # Precision is the plan's: an ambient autocast would run the heads in reduced precision.
        with torch.autocast(images.device.type, enabled=False), float32_arithmetic(images.device, plan):
            tokens, patch_token_start = self.aggregator(images, plan, tick)
            special = tokens[-1][:, :, :patch_token_start]  # in the plan's store dtype
            predictions = {"camera_and_register_tokens": special.contiguous().float()}
            predictions.update(self._run_heads(tokens, images, patch_token_start, plan, tick))
        if return_all_layers:
            predictions["aggregated_tokens_list"] = tokens
        if not self.training:
            predictions["images"] = images
        return predictions

    def _run_heads(
        self,
        tokens: list[Tensor | None],
        images: Tensor,
        patch_token_start: int,
        plan: ExecutionPlan,
        tick: Callable[[], None],
    ) -> dict[str, Tensor]:
        """The heads on the kept aggregator layers; every output is float32 (as every output of the model)."""
        predictions: dict[str, Tensor] = {}
        if self.camera_head is not None:
            predictions["pose_enc"] = self.camera_head(tokens[-1], patch_token_start, plan)
            tick()
        if self.dense_head is not None:
            run = DenseRun(plan.head_chunk, plan.heads_dtype, plan.channels_last, None, plan.release_memory)
            predictions["depth"], predictions["depth_conf"] = self.dense_head(
                tokens, images, patch_token_start, run
            )
            tick()
        if self.text_alignment_head is not None:
            embedding, token = self.text_alignment_head(tokens[-1], patch_token_start, plan)
            predictions["text_alignment_embedding"], predictions["text_alignment_token"] = embedding, token
            tick()
        return predictions

    def dims(self, keep_all_layers: bool = False) -> ModelDims:
        """The sizes the planner needs (see :class:`~vggtkit.inference.ModelDims`)."""
        c = self.config
        return ModelDims(
            patch_size=c.patch_size,
            special_tokens=c.patch_token_start,
            embed_dim=c.embed_dim,
            kept_layers=c.depth if keep_all_layers else len(c.head_layers),
            dense_features=c.dense_features if c.enable_depth else 0,
        )

    def convert_weights(self, options: InferenceOptions) -> None:
        """Apply ``options.weights_dtype`` in place, one-way (reload the model to get float32 weights back); a
        no-op when it is None.

        In the aggregator, the matrices and biases of the linear layers and convolutions are converted, which the
        plan casts to that dtype at each use anyway, so the results do not change; LayerNorms, LayerScales, tokens,
        the masked query/key/value biases and the buffers stay float32, as under the official code's autocast.
        The heads are converted as a whole when ``heads_dtype`` is the same dtype.
        """
        dtype = options.weights_dtype
        if dtype is None:
            return
        with torch.no_grad():
            for module in self.aggregator.modules():
                if isinstance(module, nn.Linear | nn.Conv2d):
                    module.weight.data = module.weight.data.to(dtype)
                    if module.bias is not None and not isinstance(module, MaskedBiasLinear):
                        module.bias.data = module.bias.data.to(dtype)
        if options.effective_heads_dtype == dtype:
            for head in (self.camera_head, self.dense_head, self.text_alignment_head):
                if head is not None:
                    head.to(dtype)

    @classmethod
    def default_config(cls, checkpoint: Checkpoint) -> VGGTOmegaConfig:
        """The released configuration of a checkpoint without config.json: VGGT-Omega-1B-256-Text-Alignment when
        it holds the text alignment head, VGGT-Omega-1B-512 otherwise."""
        if any(key.startswith(TEXT_HEAD_PREFIX) for key in checkpoint.state):
            return VGGTOmegaConfig(enable_alignment=True, image_resolution=256)
        return VGGTOmegaConfig()
