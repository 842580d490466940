"""The backbone settings: one type shared by the node's parameters, the trainer's and the evaluator's configs.

Torch-free on purpose: configs are validated (and ``--help`` printed) without importing torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from vggt_uncertainty_ros.errors import ConfigError

#: Backbone families (``BackboneSpec.name``).
BACKBONES: tuple[str, ...] = ("vggt", "vggt-omega", "geometric")
#: Autocast dtype names; ``auto`` is bfloat16 on CUDA and float32 on the CPU.
DTYPES: tuple[str, ...] = ("auto", "float32", "float16", "bfloat16")
#: Attention kernels: PyTorch's fused SDPA, or FlashAttention-4 (``flash-attn-4``, CUDA SM90+, half
#: precision) when importable; otherwise the node falls back to SDPA with a warning.
ATTENTION_BACKENDS: tuple[str, ...] = ("sdpa", "flash4")
#: Image preprocessing modes: ``auto`` (the backbone's default), VGGT's official ``crop``/``pad``,
#: VGGT-Ω's official ``balanced``/``max_size``.
PREPROCESS_MODES: tuple[str, ...] = ("auto", "crop", "pad", "balanced", "max_size")
#: Modes each backbone family accepts (``auto`` first, then its default); families not listed (``geometric``:
#: no image preprocessing) take ``auto`` only.
BACKBONE_PREPROCESS_MODES: dict[str, tuple[str, ...]] = {
    "vggt": ("auto", "crop", "pad"),
    "vggt-omega": ("auto", "balanced", "max_size"),
}
_DEFAULT_MODE = {"vggt": "crop", "vggt-omega": "balanced"}


@dataclass(frozen=True)
class BackboneSpec:
    """Which frozen backbone runs, from which weights, where and how.

    Attributes:
        name: backbone family, one of :data:`BACKBONES`.
        weights: ``"tiny"`` (small random model with fixed seed, for tests and plumbing), a local
            checkpoint file (``.safetensors`` or ``.pt``), or a Hugging Face id
            (``facebook/VGGT-1B``, optionally ``repo/id:file``).
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
            An unavailable CUDA falls back to the CPU with a warning in the node and is an error
            offline (see :func:`vggt_uncertainty_ros.model.device.resolve_device`).
        dtype: autocast dtype, one of :data:`DTYPES`; half precision is not used on the CPU.
        preprocess_mode: ``auto`` (the family's default: ``crop`` for VGGT, ``balanced`` for
            VGGT-Ω), ``crop``/``pad`` (VGGT) or ``balanced``/``max_size`` (VGGT-Ω, at 512 px).
        compile: ``torch.compile`` the transformer blocks on CUDA (ignored on the CPU).
        token_cache: reuse the patch tokens of frames shared by overlapping windows.
        attention: attention kernel, one of :data:`ATTENTION_BACKENDS`.
    """

    name: str = "vggt"
    weights: str = "tiny"
    device: str = "auto"
    dtype: str = "auto"
    preprocess_mode: str = "auto"
    compile: bool = True
    token_cache: bool = True
    attention: str = "sdpa"

    def __post_init__(self) -> None:
        for name, choices in (
            ("name", BACKBONES),
            ("dtype", DTYPES),
            ("preprocess_mode", PREPROCESS_MODES),
            ("attention", ATTENTION_BACKENDS),
        ):
            if getattr(self, name) not in choices:
                raise ConfigError(f"backbone.{name} must be one of {', '.join(choices)}; got {getattr(self, name)!r}")
        allowed = BACKBONE_PREPROCESS_MODES.get(self.name, ("auto",))
        if self.preprocess_mode not in allowed:
            raise ConfigError(
                f"backbone.preprocess_mode {self.preprocess_mode!r} does not apply to backbone {self.name!r}; "
                f"use one of {', '.join(allowed)}"
            )
        for name in ("weights", "device"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"backbone.{name} must be a non-empty string; got {value!r}")
        for name in ("compile", "token_cache"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"backbone.{name} must be true or false; got {getattr(self, name)!r}")

    @property
    def resolved_preprocess_mode(self) -> str:
        """The preprocessing mode that runs (``auto`` replaced by the family's default)."""
        if self.preprocess_mode != "auto":
            return self.preprocess_mode
        return _DEFAULT_MODE.get(self.name, "auto")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, defaults: BackboneSpec | None = None) -> BackboneSpec:
        """Build from a config section; unknown keys are an error naming them.

        Raises:
            ConfigError: an unknown key or an invalid value.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown backbone setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        base = {f.name: getattr(defaults or cls(), f.name) for f in fields(cls)}
        return cls(**{**base, **values})

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain mapping (YAML/JSON-ready)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
