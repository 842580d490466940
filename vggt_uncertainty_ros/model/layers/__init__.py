"""Building blocks of our VGGT: one layer type per module, re-exported here."""

from vggt_uncertainty_ros.model.layers.attention import (
    ATTENTION_IMPLS,
    SDPA_BACKENDS,
    Attention,
    select_attention,
    set_attention_impl,
)
from vggt_uncertainty_ros.model.layers.block import Block
from vggt_uncertainty_ros.model.layers.layer_scale import LayerScale
from vggt_uncertainty_ros.model.layers.mlp import Mlp
from vggt_uncertainty_ros.model.layers.patch_embed import PatchEmbed
from vggt_uncertainty_ros.model.layers.rope import RotaryPositionEmbedding2D

__all__ = [
    "ATTENTION_IMPLS",
    "select_attention",
    "set_attention_impl",
    "SDPA_BACKENDS",
    "Attention",
    "Block",
    "LayerScale",
    "Mlp",
    "PatchEmbed",
    "RotaryPositionEmbedding2D",
]
