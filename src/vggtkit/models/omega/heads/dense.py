"""Dense head: depth and its confidence from four aggregator layers, at the patch grid times the patch size.

The shared DPT fusion (:class:`~vggtkit.layers.dpt.DPTFusion`, residual units whose skip carries the un-activated
input) ends with refinenet1 at 4x the patch grid, without upsampling; the uv position embedding is added once more,
then two 1x1 convolutions give (p/4)^2 channels each, which a pixel shuffle by p/4 turns into full-resolution depth
(exp) and confidence (1 + exp) maps of (H // p * p, W // p * p) pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vggtkit.layers.dpt import ConvRunner, DenseRun, DPTFusion, add_uv_position_embedding_
from vggtkit.utils.memory import release_free_memory


class DenseHead(DPTFusion):
    """Keys ``norm``, ``projects.k``, ``resize_layers.{0,1,3}``, ``scratch.layer{1..4}_rn``,
    ``scratch.refinenet{1..4}``, ``proj``, ``proj_conf``."""

    def __init__(
        self,
        dim_in: int,
        patch_size: int = 16,
        features: int = 256,
        out_channels: Sequence[int] = (256, 512, 1024, 1024),
        intermediate_layer_idx: Sequence[int] = (4, 11, 17, 23),
    ) -> None:
        if patch_size % 4:
            raise ValueError(f"the dense head needs a patch size divisible by 4, got {patch_size}")
        super().__init__(dim_in, patch_size, features, out_channels, intermediate_layer_idx, relu_skip=False)
        self.upscale = patch_size // 4
        self.proj = nn.Conv2d(features, self.upscale**2, 1)
        self.proj_conf = nn.Conv2d(features, self.upscale**2, 1)

    def output_size(self, image_hw: Sequence[int]) -> tuple[int, int]:
        """(height, width) of the maps for images of ``image_hw``: whole patches only."""
        p = self.patch_size
        return int(image_hw[0]) // p * p, int(image_hw[1]) // p * p

    def forward(
        self,
        aggregated_tokens_list: Sequence[Tensor | None],
        images: Tensor,
        patch_token_start: int,
        run: DenseRun | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Args:
            aggregated_tokens_list: aggregator outputs (B, S, P, 2C) of any float dtype, at least at
                ``intermediate_layer_idx``.
            images: (B, S, 3, H, W), used for its size.
            run: frames per pass, precision and layout (default: 8 frames per pass, float32, as the official code);
                ``band_rows`` does not apply (the full-resolution stage is a pixel shuffle of the last maps).

        Returns:
            depth (B, S, H', W', 1) and confidence (B, S, H', W'), float32, with (H', W') = :meth:`output_size`.
        """
        run = run or DenseRun()
        B, S, _, H, W = images.shape
        layers = [aggregated_tokens_list[i].flatten(0, 1) for i in self.intermediate_layer_idx]
        n = B * S
        chunk = min(run.frames_chunk or n, n)
        conv = ConvRunner(run.dtype, run.channels_last)
        depth = torch.empty(n, *self.output_size((H, W)), 1, device=images.device)
        conf = torch.empty(n, *self.output_size((H, W)), device=images.device)
        for f0 in range(0, n, chunk):
            f1 = min(f0 + chunk, n)
            if run.release_memory:
                release_free_memory()
            fused = self.fuse(conv, [t[f0:f1] for t in layers], (H, W), patch_token_start)
            depth[f0:f1], conf[f0:f1] = self.predict(conv, fused, W / H)
            del fused
        return depth.unflatten(0, (B, S)), conf.unflatten(0, (B, S))

    def predict(self, conv: ConvRunner, fused: Tensor, aspect_ratio: float) -> tuple[Tensor, Tensor]:
        """Depth (N, H', W', 1) and confidence (N, H', W'), float32, from the fused maps (N, F, 4h, 4w) (consumed:
        the position embedding is added in place)."""
        add_uv_position_embedding_(fused, aspect_ratio)
        depth_logits = F.pixel_shuffle(conv(self.proj, fused), self.upscale).float()  # (N, 1, H', W')
        conf_logits = F.pixel_shuffle(conv(self.proj_conf, fused), self.upscale).float()
        return depth_logits.permute(0, 2, 3, 1).exp(), 1 + conf_logits[:, 0].exp()
