"""Size presets of our VGGT-Ω (DINOv3-style patch encoder, aggregator, camera head)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from vggt_uncertainty_ros.errors import ConfigError


@dataclass(frozen=True)
class OmegaConfig:
    """Architecture hyper-parameters of VGGT-Ω.

    Attributes:
        name: preset name (``"full"`` or ``"tiny"``).
        patch_size: patch side (px); inputs must be multiples of it.
        embed_dim: token width ``C`` of the patch encoder and the aggregator.
        encoder_depth, encoder_heads: blocks and heads of the DINOv3-style patch encoder.
        storage_tokens: the encoder's storage (register) tokens, after its class token.
        depth: frame blocks (= inter-frame blocks).
        num_heads: aggregator heads (head dim must be a multiple of 4 for axial RoPE).
        num_register_tokens: aggregator register tokens after the camera token.
        register_blocks: inter-frame blocks in which only camera and register tokens attend.
        rope_base: RoPE period base (coordinates normalised by the longer grid side).
        head_depth, head_heads: camera-head trunk blocks and heads.
        image_resolution: preprocessing resolution the weights are meant for (512 for
            ``vggt_omega_1b_512.pt``; the tiny preset uses 128 to keep tests fast).
    """

    name: str = "full"
    patch_size: int = 16
    embed_dim: int = 1024
    encoder_depth: int = 24
    encoder_heads: int = 16
    storage_tokens: int = 4
    depth: int = 24
    num_heads: int = 16
    num_register_tokens: int = 16
    register_blocks: tuple[int, ...] = (2, 6, 9, 14, 20)
    rope_base: float = 100.0
    head_depth: int = 4
    head_heads: int = 16
    image_resolution: int = 512

    def __post_init__(self) -> None:
        bad = [i for i in self.register_blocks if not 0 <= i < self.depth]
        if bad:
            raise ConfigError(f"register_blocks {bad} outside 0..{self.depth - 1}")
        for dim, heads in ((self.embed_dim, self.encoder_heads), (self.embed_dim, self.num_heads)):
            if dim % (4 * heads):
                raise ConfigError(f"embed_dim {dim} must be a multiple of 4 x heads ({heads}) for axial RoPE")

    @property
    def feature_dim(self) -> int:
        """Width of the aggregated tokens (``2 * embed_dim``): frame and inter-frame halves."""
        return 2 * self.embed_dim

    @property
    def special_tokens(self) -> int:
        """Camera + register tokens per frame (17 at full size); patch tokens start here."""
        return 1 + self.num_register_tokens

    def to_dict(self) -> dict:
        """Plain-dict form (checkpoint metadata, fingerprints)."""
        d = asdict(self)
        d["register_blocks"] = list(self.register_blocks)
        return d


OMEGA_PRESETS: dict[str, OmegaConfig] = {
    "full": OmegaConfig(),
    "tiny": OmegaConfig(
        name="tiny",
        embed_dim=64,
        encoder_depth=2,
        encoder_heads=2,
        depth=3,
        num_heads=2,
        num_register_tokens=4,
        register_blocks=(1,),
        head_depth=2,
        head_heads=2,
        image_resolution=128,
    ),
}


def get_omega_config(config: str | OmegaConfig) -> OmegaConfig:
    """Resolve a preset name or pass an :class:`OmegaConfig` through.

    Raises:
        ConfigError: an unknown preset name.
    """
    if isinstance(config, OmegaConfig):
        return config
    try:
        return OMEGA_PRESETS[config]
    except KeyError:
        raise ConfigError(f"unknown VGGT-Omega config {config!r}; expected one of {sorted(OMEGA_PRESETS)}") from None
