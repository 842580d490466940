"""Size presets of our VGGT (aggregator + camera head)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from vggt_uncertainty_ros.errors import ConfigError


@dataclass(frozen=True)
class VGGTConfig:
    """Architecture hyper-parameters.

    Attributes:
        name: Preset name (``"full"`` or ``"tiny"``).
        img_size: Side of the square grid the DINOv2 position embedding was trained on (px).
        patch_size: Patch side (px).
        embed_dim: Token width ``C`` of DINOv2 and the aggregator.
        dino_depth: Number of DINOv2 blocks.
        dino_heads: DINOv2 attention heads.
        depth: Number of frame blocks (= number of global blocks).
        num_heads: Aggregator attention heads (head dim must be a multiple of 4 for 2-D RoPE).
        num_register_tokens: Register tokens, both in DINOv2 and in the aggregator.
        rope_freq: RoPE base frequency.
        head_depth: Camera-head trunk blocks.
        head_heads: Camera-head attention heads.
        pose_iters: Camera-head refinement iterations.
    """

    name: str = "full"
    img_size: int = 518
    patch_size: int = 14
    embed_dim: int = 1024
    dino_depth: int = 24
    dino_heads: int = 16
    depth: int = 24
    num_heads: int = 16
    num_register_tokens: int = 4
    rope_freq: float = 100.0
    head_depth: int = 4
    head_heads: int = 16
    pose_iters: int = 4

    @property
    def feature_dim(self) -> int:
        """Width of the aggregated tokens and camera features (``2 * embed_dim``)."""
        return 2 * self.embed_dim

    def to_dict(self) -> dict:
        """Plain-dict form (for checkpoints metadata and hashing)."""
        return asdict(self)


PRESETS: dict[str, VGGTConfig] = {
    "full": VGGTConfig(),
    "tiny": VGGTConfig(
        name="tiny",
        embed_dim=64,
        dino_depth=2,
        dino_heads=2,
        depth=2,
        num_heads=2,
        head_depth=2,
        head_heads=2,
    ),
}


def get_config(config: str | VGGTConfig) -> VGGTConfig:
    """Resolve a preset name or pass a :class:`VGGTConfig` through.

    Raises:
        ConfigError: For an unknown preset name.
    """
    if isinstance(config, VGGTConfig):
        return config
    try:
        return PRESETS[config]
    except KeyError:
        raise ConfigError(f"unknown VGGT config {config!r}; expected one of {sorted(PRESETS)}") from None
