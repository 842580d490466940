"""The uncertainty head: an MLP from one backbone feature per frame to 6 log-variances.

Output convention (docs/ARCHITECTURE.md, "The residual"): component order
``[φx, φy, φz, ρx, ρy, ρz]`` = ``[rot (3), trans (3)]``; ``log_var = log σ²`` of the
right-perturbation residual ``r = Log(inv(T_gt) @ T_pred)`` of frame ``i`` relative to
frame 0 of its window, rotation in rad², translation in unit² (VGGT units for heads with
scale convention ``vggt``, metres² for ``metric``).

Two parameterizations of the last layer are supported:

* ``log_var`` (default): the MLP outputs ``log σ²`` directly, clamped to ``[-20, 20]``.
* ``sqrt_info``: the MLP outputs ``√λ = 1/σ`` through ``softplus + eps``, clamped to
  ``≤ 200`` (rotation) / ``≤ 100`` (translation) as in the original analysis. It is kept for
  comparison; :meth:`UncertaintyHead.forward` still returns ``log σ² = -2 log √λ`` so
  every consumer sees the same quantity.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from enum import Enum
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from vggt_uncertainty_ros.calibration.constants import LOG_VAR_BOUNDS, SQRT_INFO_EPS, SQRT_INFO_MAX

_log = logging.getLogger(__name__)

#: Number of outputs: 3 rotation + 3 translation, in that order.
N_OUTPUTS = 6
#: Slices of the rotation and translation blocks in every 6-vector.
ROT = slice(0, 3)
TRANS = slice(3, 6)
#: Default initial σ: (rotation rad, translation VGGT units/metres); sets the last-layer bias.
DEFAULT_INIT_SIGMA: tuple[float, float] = (0.02, 0.05)


class Parameterization(str, Enum):
    """What the last linear layer of the head represents."""

    LOG_VAR = "log_var"
    SQRT_INFO = "sqrt_info"


class InputFeature(str, Enum):
    """Which per-frame backbone feature the head reads (keys of ``VGGT.forward``'s dict)."""

    CAMERA_FEATURES = "camera_features"
    CAMERA_TRUNK_FEATURES = "camera_trunk_features"


def _per_component(value: float | Sequence[float], name: str) -> torch.Tensor:
    """Expand a scalar, a (rot, trans) pair or a 6-vector into a float64 tensor [6]."""
    vals = [float(value)] if isinstance(value, (int, float)) else [float(v) for v in value]
    if len(vals) == 1:
        vals = vals * N_OUTPUTS
    elif len(vals) == 2:
        vals = [vals[0]] * 3 + [vals[1]] * 3
    if len(vals) != N_OUTPUTS:
        raise ValueError(f"{name} must be a scalar, a (rot, trans) pair or 6 values, got {value!r}")
    return torch.tensor(vals, dtype=torch.float64)


def sqrt_info_to_log_var(sqrt_info: torch.Tensor) -> torch.Tensor:
    """Convert √λ = 1/σ [..., 6] (1/rad, 1/unit) into log σ² [..., 6] (rad², unit²)."""
    return -2.0 * torch.log(sqrt_info)


def log_var_to_sqrt_info(log_var: torch.Tensor) -> torch.Tensor:
    """Convert log σ² [..., 6] (rad², unit²) into √λ = 1/σ = exp(-log σ² / 2) [..., 6]."""
    return torch.exp(-0.5 * log_var)


def scale_translation_log_var(log_var: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """Express the translation log-variance in a scaled unit: ``log_var_trans + 2 log s``.

    Used when a translation is multiplied by a window scale ``s`` (ground-truth or odometry
    fit, docs/ARCHITECTURE.md "Scale convention of a head"); σ_trans is multiplied by ``s``.

    Args:
        log_var: log σ² [..., 6], order (rot, trans); rotation is returned unchanged.
        scale: positive scale ``s`` broadcastable to ``log_var.shape[:-1]``.

    Returns:
        A new tensor [..., 6] with the translation block shifted by ``2 log s``.
    """
    s = torch.as_tensor(scale, dtype=log_var.dtype, device=log_var.device)
    if bool((s <= 0).any()):
        raise ValueError(f"scale must be positive, got {scale!r}")
    shift = 2.0 * torch.log(s)
    out = log_var.clone()
    out[..., TRANS] = out[..., TRANS] + shift.unsqueeze(-1)
    return out


class UncertaintyHead(nn.Module):
    """MLP ``in_dim → hidden → 6`` predicting per-frame pose log-variances.

    With ``in_dim=2048, hidden=1024`` it has ≈ 2.1 M parameters. The last layer starts
    with small weights and a bias at the initial σ, so at step 0 every frame predicts
    ``init_sigma`` (rotation rad, translation unit) and training starts from a sensible
    uncertainty instead of σ = 1.

    Args:
        in_dim: feature size (2048 for the full VGGT's ``camera_features``).
        hidden: hidden layer width.
        parameterization: ``"log_var"`` or ``"sqrt_info"`` (see module docstring).
        init_sigma: initial σ: a scalar, a (rot rad, trans unit) pair or 6 values.
        input_norm: apply a LayerNorm to the input features (robust to feature scale).
        dropout: dropout probability after the hidden activation.
        final_init_std: std of the last layer's initial weights.
    """

    def __init__(
        self,
        in_dim: int = 2048,
        hidden: int = 1024,
        parameterization: Parameterization | str = Parameterization.LOG_VAR,
        *,
        init_sigma: float | Sequence[float] = DEFAULT_INIT_SIGMA,
        input_norm: bool = True,
        dropout: float = 0.0,
        final_init_std: float = 1e-3,
    ) -> None:
        super().__init__()
        if in_dim <= 0 or hidden <= 0:
            raise ValueError(f"in_dim and hidden must be positive, got {in_dim}, {hidden}")
        try:
            self.parameterization = Parameterization(parameterization)
        except ValueError as err:
            raise NotImplementedError(
                f"unknown parameterization {parameterization!r}; expected one of {[p.value for p in Parameterization]}"
            ) from err
        sigma0 = _per_component(init_sigma, "init_sigma")
        if bool((sigma0 <= 0).any()):
            raise ValueError(f"init_sigma must be positive, got {init_sigma!r}")
        self.in_dim = int(in_dim)
        self.hidden = int(hidden)
        self._hparams: dict[str, Any] = {
            "init_sigma": [float(v) for v in sigma0],
            "input_norm": bool(input_norm),
            "dropout": float(dropout),
            "final_init_std": float(final_init_std),
        }
        self.norm = nn.LayerNorm(in_dim) if input_norm else nn.Identity()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc2 = nn.Linear(hidden, N_OUTPUTS)
        self.register_buffer(
            "sqrt_info_max",
            torch.tensor([SQRT_INFO_MAX[0]] * 3 + [SQRT_INFO_MAX[1]] * 3),
            persistent=False,
        )
        self._init_last_layer(sigma0, final_init_std)

    def _init_last_layer(self, sigma0: torch.Tensor, std: float) -> None:
        nn.init.normal_(self.fc2.weight, std=std)
        with torch.no_grad():
            if self.parameterization is Parameterization.LOG_VAR:
                bias = 2.0 * torch.log(sigma0)
            else:
                target = (1.0 / sigma0).clamp(max=self.sqrt_info_max.double()) - SQRT_INFO_EPS
                bias = target + torch.log(-torch.expm1(-target))  # softplus⁻¹
            self.fc2.bias.copy_(bias.to(self.fc2.bias.dtype))

    @property
    def config(self) -> dict[str, Any]:
        """Constructor keyword arguments that rebuild this head (JSON-serialisable)."""
        return {
            "in_dim": self.in_dim,
            "hidden": self.hidden,
            "parameterization": self.parameterization.value,
            **self._hparams,
        }

    def forward_native(self, features: torch.Tensor) -> torch.Tensor:
        """Return the parameterization's own output (for diagnostics such as clamp hits).

        Args:
            features: [..., in_dim] backbone features.

        Returns:
            [..., 6] (rot, trans): ``log σ²`` clamped to [-20, 20] for ``log_var``, or
            ``√λ = 1/σ`` (1/rad, 1/unit) in ``(0, 200]`` / ``(0, 100]`` for ``sqrt_info``.
        """
        if features.shape[-1] != self.in_dim:
            raise ValueError(f"expected features [..., {self.in_dim}], got {tuple(features.shape)}")
        raw = self.fc2(self.drop(self.act(self.fc1(self.norm(features)))))
        if self.parameterization is Parameterization.LOG_VAR:
            return raw.clamp(*LOG_VAR_BOUNDS)
        sqrt_info = F.softplus(raw) + SQRT_INFO_EPS
        return torch.minimum(sqrt_info, self.sqrt_info_max.to(sqrt_info.dtype))

    def native_to_log_var(self, native: torch.Tensor) -> torch.Tensor:
        """Map :meth:`forward_native`'s output to log σ² [..., 6] (rad², unit²)."""
        if self.parameterization is Parameterization.LOG_VAR:
            return native
        return sqrt_info_to_log_var(native)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Predict log σ² of each frame's residual.

        Args:
            features: [..., in_dim] per-frame backbone features.

        Returns:
            log σ² [..., 6], order (rot rad², trans unit²), whatever the parameterization.
        """
        return self.native_to_log_var(self.forward_native(features))

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def extra_repr(self) -> str:
        return f"parameterization={self.parameterization.value}"


def initial_log_var(sigma: float | Sequence[float]) -> torch.Tensor:
    """log σ² [6] (float64) for a scalar, (rot, trans) pair or 6-vector of σ values."""
    s = _per_component(sigma, "sigma")
    if bool((s <= 0).any()):
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    return 2.0 * torch.log(s)


__all__ = [
    "DEFAULT_INIT_SIGMA",
    "LOG_VAR_BOUNDS",
    "N_OUTPUTS",
    "ROT",
    "SQRT_INFO_EPS",
    "SQRT_INFO_MAX",
    "TRANS",
    "InputFeature",
    "Parameterization",
    "UncertaintyHead",
    "initial_log_var",
    "log_var_to_sqrt_info",
    "scale_translation_log_var",
    "sqrt_info_to_log_var",
]
