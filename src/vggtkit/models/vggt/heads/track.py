"""Track head: DPT feature maps plus an iterative correlation tracker for query points in frame 0."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from vggtkit.layers import Mlp
from vggtkit.layers.dpt import DenseRun
from vggtkit.layers.init import normal_parameter
from vggtkit.models.vggt.heads.dpt import DPTHead
from vggtkit.models.vggt.heads.track_modules import (
    CorrBlock,
    EfficientUpdateFormer,
    flow_embedding,
    sample_features,
    sincos_grid_embedding,
)


class BaseTrackerPredictor(nn.Module):
    """Refines point tracks across frames from feature maps (CoTracker-style).

    Each iteration samples correlation windows around the current positions, embeds the flow from frame 0,
    and lets the update transformer predict position and feature deltas. Frame 0 positions stay at the queries.
    """

    def __init__(
        self,
        latent_dim: int = 128,
        hidden_size: int = 384,
        corr_levels: int = 7,
        corr_radius: int = 4,
        stride: int = 2,
        depth: int = 6,
        max_scale: int = 518,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.latent_dim = latent_dim
        self.corr_levels = corr_levels
        self.corr_radius = corr_radius
        self.max_scale = max_scale
        self.transformer_dim = 3 * latent_dim + 4  # flow embedding (latent + 4), correlation, track features
        self.corr_mlp = Mlp(corr_levels * (2 * corr_radius + 1) ** 2, hidden_size, latent_dim)
        self.query_ref_token = normal_parameter(1, 2, self.transformer_dim)
        self.updateformer = EfficientUpdateFormer(
            self.transformer_dim, hidden_size, latent_dim + 2, depth=depth
        )
        self.fmap_norm = nn.LayerNorm(latent_dim)
        self.ffeat_norm = nn.GroupNorm(1, latent_dim)
        self.ffeat_updater = nn.Sequential(nn.Linear(latent_dim, latent_dim), nn.GELU())
        self.vis_predictor = nn.Sequential(nn.Linear(latent_dim, 1))
        self.conf_predictor = nn.Sequential(nn.Linear(latent_dim, 1))

    def forward(
        self, query_points: Tensor, fmaps: Tensor, iters: int = 4, frames_chunk_size: int | None = None
    ) -> tuple[list[Tensor], Tensor, Tensor]:
        """Args:
            query_points: (B, N, 2) pixel (x, y) in frame 0 of the input images.
            fmaps: (B, S, C, h, w) feature maps at 1/stride resolution.
            frames_chunk_size: frames per correlation pass (memory; None: all at once, as the reference).

        Returns:
            ``iters`` track estimates (B, S, N, 2) in input pixels, visibility (B, S, N) and confidence (B, S, N),
            both after a sigmoid.
        """
        B, N, _ = query_points.shape
        _, S, C, h, w = fmaps.shape
        fmaps = self.fmap_norm(fmaps.permute(0, 1, 3, 4, 2)).permute(0, 1, 4, 2, 3)
        queries = query_points / float(self.stride)
        coords = queries[:, None].expand(B, S, N, 2)
        track_feats = sample_features(fmaps[:, 0], queries)[:, None].expand(B, S, N, C)  # (B, S, N, C)
        corr_block = CorrBlock(fmaps, self.corr_levels, self.corr_radius)
        # Same positional vector for every frame of a track: the embedding at its query position.
        pos_embed = sincos_grid_embedding(self.transformer_dim, h, w, fmaps.device).expand(B, -1, -1, -1)
        pos_embed = sample_features(pos_embed, queries).reshape(B * N, 1, -1)
        ref_token = torch.cat(
            [self.query_ref_token[:, :1], self.query_ref_token[:, 1:].expand(-1, S - 1, -1)], 1
        )

        def per_track(t: Tensor) -> Tensor:  # (B, S, N, D) -> (B*N, S, D)
            return t.permute(0, 2, 1, 3).reshape(B * N, S, t.shape[-1])

        predictions = []
        for _ in range(iters):
            coords = coords.detach()
            corr = self.corr_mlp(per_track(corr_block.sample(track_feats, coords, frames_chunk_size)))
            flows = per_track(coords - coords[:, :1])
            flow_emb = torch.cat(
                [flow_embedding(flows, self.latent_dim // 2), flows / self.max_scale, flows / self.max_scale],
                -1,
            )
            x = (
                torch.cat([flow_emb, corr, per_track(track_feats)], dim=-1)
                + pos_embed
                + ref_token.to(flows.dtype)
            )
            delta = self.updateformer(x.reshape(B, N, S, -1))  # (B, N, S, 2 + C)
            delta_coords = delta[..., :2].permute(0, 2, 1, 3)
            delta_feats = delta[..., 2:].reshape(B * N * S, C)
            feats = per_track(track_feats).reshape(B * N * S, C)
            feats = self.ffeat_updater(self.ffeat_norm(delta_feats)) + feats
            track_feats = feats.reshape(B, N, S, C).permute(0, 2, 1, 3)
            coords = coords + delta_coords
            coords = torch.cat([queries[:, None], coords[:, 1:]], dim=1)  # frame 0 stays at the queries
            predictions.append(coords * self.stride)
        vis = torch.sigmoid(self.vis_predictor(track_feats).squeeze(-1))
        conf = torch.sigmoid(self.conf_predictor(track_feats).squeeze(-1))
        return predictions, vis, conf


class TrackHead(nn.Module):
    """DPT feature extractor (no position embedding, half resolution) followed by the tracker."""

    def __init__(
        self,
        dim_in: int,
        patch_size: int = 14,
        features: int = 128,
        out_channels: Sequence[int] = (256, 512, 1024, 1024),
        intermediate_layer_idx: Sequence[int] = (4, 11, 17, 23),
        iters: int = 4,
        stride: int = 2,
        corr_levels: int = 7,
        corr_radius: int = 4,
        hidden_size: int = 384,
    ) -> None:
        super().__init__()
        # The released checkpoint's track head was trained without the DPT position embedding.
        self.feature_extractor = DPTHead(
            dim_in,
            patch_size=patch_size,
            features=features,
            out_channels=out_channels,
            intermediate_layer_idx=intermediate_layer_idx,
            pos_embed=False,
            feature_only=True,
            down_ratio=2,
        )
        self.tracker = BaseTrackerPredictor(features, hidden_size, corr_levels, corr_radius, stride)
        self.iters = iters

    def forward(
        self,
        aggregated_tokens_list: Sequence[Tensor | None],
        images: Tensor,
        patch_start_idx: int,
        query_points: Tensor,
        iters: int | None = None,
        run: DenseRun | None = None,
    ) -> tuple[list[Tensor], Tensor, Tensor]:
        """query_points: (B, N, 2) pixels in frame 0. Returns (tracks per iteration, vis, conf); see the tracker.

        ``run`` sets how the feature extractor runs (:class:`~vggtkit.layers.dpt.DenseRun`); its frame chunk also
        bounds the tracker's correlation volumes (None there: all frames at once, as the official code).
        """
        fmaps = self.feature_extractor(aggregated_tokens_list, images, patch_start_idx, run)
        frames_chunk = None if run is None else run.frames_chunk
        return self.tracker(query_points, fmaps, iters or self.iters, frames_chunk_size=frames_chunk)
