"""Text alignment head (the 256 px text model): a language token reads out the camera and register tokens."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vggtkit.inference.plan import ExecutionPlan
from vggtkit.layers.init import normal_parameter
from vggtkit.models.omega.config import NORM_EPS
from vggtkit.models.omega.heads.readout import head_blocks, run_blocks, special_tokens


class TextAlignmentHead(nn.Module):
    """Keys ``language_token``, ``token_norm``, ``readout_blocks.N``, ``language_token_norm``,
    ``embedding_projector.{0,2,3}``.

    A learned language token is prepended to the normalised camera and register tokens of all frames of a sequence;
    after the readout blocks, its normalised state is ``text_alignment_token`` and its projection, scaled to unit
    length, ``text_alignment_embedding`` (one per sequence).
    """

    def __init__(
        self, dim_in: int, readout_depth: int = 4, num_heads: int = 16, mlp_ratio: float = 4.0
    ) -> None:
        super().__init__()
        self.language_token = normal_parameter(1, 1, dim_in, std=0.02)
        self.token_norm = nn.LayerNorm(dim_in, eps=NORM_EPS)
        self.readout_blocks = nn.ModuleList(head_blocks(dim_in, readout_depth, num_heads, mlp_ratio))
        self.language_token_norm = nn.LayerNorm(dim_in, eps=NORM_EPS)
        self.embedding_projector = nn.Sequential(
            nn.Linear(dim_in, dim_in // 2), nn.GELU(), nn.LayerNorm(dim_in // 2, eps=NORM_EPS),
            nn.Linear(dim_in // 2, dim_in),
        )  # fmt: skip

    def forward(
        self, tokens: Tensor, patch_token_start: int, plan: ExecutionPlan | None = None
    ) -> tuple[Tensor, Tensor]:
        """Args:
            tokens: the last aggregator layer (B, S, P, 2C), any float dtype.
            patch_token_start: 1 + R, the camera and register tokens per frame.
            plan: token chunks and in-place updates of the readout blocks (the head runs in its weights' dtype).

        Returns:
            (embedding, token): (B, 2C) float32 each; the embedding has unit L2 norm.
        """
        special = special_tokens(tokens, patch_token_start, self.token_norm)
        language = self.language_token.to(special.dtype).expand(special.shape[0], -1, -1)
        x = run_blocks(self.readout_blocks, torch.cat([language, special], dim=1), plan)
        token = self.language_token_norm(x[:, 0])
        embedding = F.normalize(self.embedding_projector(token), dim=-1)
        return embedding.float(), token.float()
