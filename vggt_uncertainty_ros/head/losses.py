"""Losses of the uncertainty head: short pure functions over torch tensors.

Conventions (docs/ARCHITECTURE.md): residuals ``r`` and log-variances are 6-vectors in the
order ``[rot (3), trans (3)]``; rotation in rad (log σ² in rad²), translation in the unit
of the ground truth after the scale fit (metres; log σ² in m²). Batched tensors are
``[B, S, 6]``: ``B`` windows of ``S`` frames, frame 0 the window's reference (its residual
is zero by construction, so it carries no loss). NLLs omit the constant ``½ log 2π``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from vggt_uncertainty_ros.calibration.constants import LOG_VAR_BOUNDS
from vggt_uncertainty_ros.geometry.residuals import MIN_MOTION_M
from vggt_uncertainty_ros.head.head import ROT, TRANS

#: Default clamps of the motion weight (analysis, "Normalize Translation NLL by Motion").
MOTION_WEIGHT_BOUNDS: tuple[float, float] = (0.1, 2.0)


def gaussian_nll_log_var(
    r: torch.Tensor,
    log_var: torch.Tensor,
    bounds: tuple[float, float] = LOG_VAR_BOUNDS,
) -> torch.Tensor:
    """Per-component Gaussian NLL with a log-variance: ``½ (r² e^(−log σ²) + log σ²)``.

    Args:
        r: residuals [..., 6] (rot rad, trans m) or any matching shape.
        log_var: log σ² with the same shape (rad², m²); clamped to ``bounds`` first.
        bounds: safety clamp on ``log_var`` (gradient is zero outside it).

    Returns:
        NLL per component, same shape as ``r`` (nats, without ``½ log 2π``).
    """
    lv = log_var.clamp(*bounds)
    return 0.5 * (r.square() * torch.exp(-lv) + lv)


def gaussian_nll_sqrt_info(r: torch.Tensor, sqrt_info: torch.Tensor) -> torch.Tensor:
    """Per-component Gaussian NLL with √information: ``½ (r² λ − log λ)``, ``λ = (√λ)²``.

    Equal to :func:`gaussian_nll_log_var` with ``log σ² = −2 log √λ``.

    Args:
        r: residuals [..., 6] (rot rad, trans m).
        sqrt_info: √λ = 1/σ, same shape, strictly positive (1/rad, 1/m).

    Returns:
        NLL per component, same shape as ``r`` (nats, without ``½ log 2π``).
    """
    return 0.5 * (r.square() * sqrt_info.square()) - torch.log(sqrt_info)


def sqrt_info_prior(
    log_var: torch.Tensor,
    sqrt_info_0: float | Sequence[float] | torch.Tensor = 1.0,
) -> torch.Tensor:
    """Squared distance of log √λ to a prior: ``‖log √λ − log √λ₀‖²`` summed over components.

    Multiply by a small α (1e-4 … 1e-3) to get the analysis' weak prior; it pulls extreme
    confidences back unless the data insist.

    Args:
        log_var: log σ² [..., 6] (rad², m²); ``log √λ = −½ log σ²``.
        sqrt_info_0: prior √λ₀ (1/rad, 1/m): scalar, or 6 values broadcast over the last dim.

    Returns:
        [...] per-frame squared distance (no reduction over frames).
    """
    target = torch.log(torch.as_tensor(sqrt_info_0, dtype=log_var.dtype, device=log_var.device))
    return (-0.5 * log_var - target).square().sum(dim=-1)


def window_frame_mask(batch: int, size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Bool mask [batch, size]: True for frames that carry loss (every frame but frame 0)."""
    mask = torch.ones(batch, size, dtype=torch.bool, device=device)
    mask[:, 0] = False
    return mask


def motion_weights(
    t_gt: torch.Tensor,
    mask: torch.Tensor | None = None,
    bounds: tuple[float, float] = MOTION_WEIGHT_BOUNDS,
) -> torch.Tensor:
    """Per-window translation-NLL weights from ground-truth motion.

    ``w_b = m_b / mean_b(m_b)`` clamped to ``bounds``, with ``m_b`` the mean ‖t_gt‖ over the
    window's loss-carrying frames. Windows with little motion (whose tiny residuals would
    otherwise push σ_trans towards zero) get less weight. All-static batches get 1.

    Args:
        t_gt: ground-truth window-relative translations [B, S, 3] (m).
        mask: [B, S] bool, frames to average over; default all frames but frame 0.
        bounds: (min, max) clamp of the weight.

    Returns:
        [B] weights (no gradient).
    """
    with torch.no_grad():
        if mask is None:
            mask = window_frame_mask(t_gt.shape[0], t_gt.shape[1], t_gt.device)
        m = mask.to(t_gt.dtype)
        norm_mean = (t_gt.norm(dim=-1) * m).sum(-1) / m.sum(-1).clamp(min=1.0)
        batch_mean = norm_mean.mean()
        if float(batch_mean) <= 0.0:
            return torch.ones_like(norm_mean)
        return (norm_mean / batch_mean).clamp(*bounds)


def beta_weights(log_var: torch.Tensor, beta: float) -> torch.Tensor:
    """β-NLL weights ``σ^(2β) = exp(β log σ²)``, detached (Seitzer et al. 2022).

    Args:
        log_var: log σ² [..., 6].
        beta: 0 gives plain NLL (weights 1); 0.5 is the usual choice.

    Returns:
        Weights with the shape of ``log_var`` and no gradient.
    """
    if beta == 0.0:
        return torch.ones_like(log_var)
    return torch.exp(beta * log_var.detach())


@dataclass(frozen=True)
class LossConfig:
    """Options of the head's training loss (the trainer's ``loss`` section, all off by default).

    Attributes:
        prior_alpha: weight α of :func:`sqrt_info_prior` ``α (log √λ - log √λ₀)²``
            (0 disables it; the analysis suggests 1e-4 … 1e-3).
        prior_sqrt_info0: √λ₀ of the prior (1/σ₀ in rad⁻¹ / m⁻¹): scalar, (rot, trans) pair or 6 values.
        motion_weighting: weight the translation NLL by :func:`motion_weights`
            (mean ‖t_gt‖ / its batch mean, clamped to ``motion_weight_bounds``).
        motion_weight_bounds: clamp of the motion weight.
        beta_nll: β of β-NLL (per-sample weight σ^(2β), detached; 0 disables it).
        log_var_bounds: safety clamp of log σ² inside the NLL.
        min_motion_m: frames with ‖t_gt‖ above this (metres) enter the per-window scale fit that
            expresses the residuals in the loss's unit (used where the residuals are built,
            :func:`vggt_uncertainty_ros.geometry.fit_scale`; not by :func:`pose_uncertainty_loss`).
    """

    prior_alpha: float = 0.0
    prior_sqrt_info0: float | tuple[float, ...] = 1.0
    motion_weighting: bool = False
    motion_weight_bounds: tuple[float, float] = MOTION_WEIGHT_BOUNDS
    beta_nll: float = 0.0
    log_var_bounds: tuple[float, float] = LOG_VAR_BOUNDS
    min_motion_m: float = MIN_MOTION_M


@dataclass(frozen=True)
class LossOutput:
    """Result of :func:`pose_uncertainty_loss`.

    Attributes:
        loss: scalar to minimise (weighted NLL + prior).
        components: detached scalars: ``nll`` (unweighted NLL per frame, summed over the 6
            components), ``nll_rot``, ``nll_trans`` (per frame, 3 components each),
            ``nll_weighted`` (what enters ``loss``), ``prior`` (α-weighted), ``n_frames``.
    """

    loss: torch.Tensor
    components: dict[str, float] = field(default_factory=dict)


def _expand_prior(value: float | Sequence[float]) -> list[float]:
    vals = [float(value)] if isinstance(value, (int, float)) else [float(v) for v in value]
    if len(vals) == 2:
        return [vals[0]] * 3 + [vals[1]] * 3
    if len(vals) in (1, 6):
        return vals * (6 // len(vals))
    raise ValueError(f"prior_sqrt_info0 must be a scalar, a (rot, trans) pair or 6 values, got {value!r}")


def pose_uncertainty_loss(
    r: torch.Tensor,
    log_var: torch.Tensor,
    *,
    config: LossConfig | None = None,
    mask: torch.Tensor | None = None,
    t_gt: torch.Tensor | None = None,
    trans_mask: torch.Tensor | None = None,
) -> LossOutput:
    """The head's training loss over a batch of windows.

    ``loss = Σ_frames Σ_k w_bk · nll_k / n_frames + α · mean_frames ‖log √λ − log √λ₀‖²``
    where ``nll_k`` is :func:`gaussian_nll_log_var`, ``w`` combines the β-NLL weight and, on
    the translation block, the window's motion weight. Frames with ``mask`` False (frame 0 by
    default) carry no loss.

    Args:
        r: residuals [B, S, 6] (rot rad, trans m), already in the unit of ``log_var``.
        log_var: predicted log σ² [B, S, 6] (both parameterizations give log σ²).
        config: loss options; defaults to plain NLL.
        mask: [B, S] bool of loss-carrying frames; default every frame but frame 0.
        t_gt: ground-truth translations [B, S, 3] (m); required for motion weighting.
        trans_mask: [B] or [B, S] bool; False excludes the *translation* block of those
            windows/frames from the loss (scale protocol: a window without a trustworthy
            scale has no translation residual). Default: every loss-carrying frame.

    Returns:
        :class:`LossOutput` with the scalar loss and its detached components.

    Raises:
        ValueError: on shape mismatches or motion weighting without ``t_gt``.
    """
    cfg = config or LossConfig()
    if r.shape != log_var.shape or r.ndim != 3 or r.shape[-1] != 6:
        raise ValueError(f"expected r and log_var [B, S, 6], got {tuple(r.shape)} and {tuple(log_var.shape)}")
    b, s, _ = r.shape
    if mask is None:
        mask = window_frame_mask(b, s, r.device)
    if mask.shape != (b, s):
        raise ValueError(f"mask must be [{b}, {s}], got {tuple(mask.shape)}")
    m = mask.to(r.dtype)
    n_frames = m.sum().clamp(min=1.0)

    nll = gaussian_nll_log_var(r, log_var, cfg.log_var_bounds)
    weights = beta_weights(log_var.clamp(*cfg.log_var_bounds), cfg.beta_nll)
    if trans_mask is not None:
        tm = trans_mask[:, None].expand(-1, s) if trans_mask.ndim == 1 else trans_mask
        if tm.shape != (b, s):
            raise ValueError(f"trans_mask must be [{b}] or [{b}, {s}], got {tuple(trans_mask.shape)}")
        keep = torch.ones_like(nll)
        keep[..., TRANS] = tm.to(r.dtype)[..., None]
        nll = nll * keep  # masked residuals must be finite (the trainer stores zeros there)
        weights = weights * keep
    if cfg.motion_weighting:
        if t_gt is None:
            raise ValueError("motion_weighting needs t_gt [B, S, 3]")
        w_motion = motion_weights(t_gt, mask, cfg.motion_weight_bounds)
        weights = weights.clone()
        weights[..., TRANS] = weights[..., TRANS] * w_motion[:, None, None]
    nll_weighted = ((nll * weights).sum(-1) * m).sum() / n_frames
    loss = nll_weighted
    prior = torch.zeros((), dtype=r.dtype, device=r.device)
    if cfg.prior_alpha > 0.0:
        target = torch.tensor(_expand_prior(cfg.prior_sqrt_info0), dtype=r.dtype, device=r.device)
        prior = cfg.prior_alpha * (sqrt_info_prior(log_var, target) * m).sum() / n_frames
        loss = loss + prior
    with torch.no_grad():
        components = {
            "nll": float((nll.sum(-1) * m).sum() / n_frames),
            "nll_rot": float((nll[..., ROT].sum(-1) * m).sum() / n_frames),
            "nll_trans": float((nll[..., TRANS].sum(-1) * m).sum() / n_frames),
            "nll_weighted": float(nll_weighted),
            "prior": float(prior),
            "n_frames": float(n_frames),
        }
    return LossOutput(loss=loss, components=components)


__all__ = [
    "MOTION_WEIGHT_BOUNDS",
    "LossConfig",
    "LossOutput",
    "beta_weights",
    "gaussian_nll_log_var",
    "gaussian_nll_sqrt_info",
    "motion_weights",
    "pose_uncertainty_loss",
    "sqrt_info_prior",
    "window_frame_mask",
]
