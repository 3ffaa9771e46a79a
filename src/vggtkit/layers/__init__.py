"""Model-agnostic building blocks, one concept per file."""

from vggtkit.layers.attention import Attention
from vggtkit.layers.block import Block
from vggtkit.layers.layer_scale import LayerScale
from vggtkit.layers.mlp import Mlp
from vggtkit.layers.rope import RopeTables, apply_rope, grid_rope_tables

__all__ = ["Attention", "Block", "LayerScale", "Mlp", "RopeTables", "apply_rope", "grid_rope_tables"]
