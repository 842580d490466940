"""Per-window residuals against ground truth, with the scale handling of :class:`ScaleMode`.

For window frames i > 0 that have ground truth and a valid measurement:

* ``T_gt_0_i = inv(T_world_cam0) @ T_world_cami`` (metres);
* ``s*`` = ``geometry.fit_scale`` of the predicted against the ground-truth translations of
  the window (frames with ground truth, ``‖t_gt‖ > 2 cm``);
* scale protocol (issue 12): a window whose fit is not trustworthy (fewer than two such frames,
  or ``s*`` outside ``[0.01, 100]``) has no translation to score: its translation residuals are
  NaN (excluded from the translation calibration and counted by reason), its rotation is
  scored, and its pose-graph constraints carry rotation only (translation variance
  :data:`UNSCALED_TRANS_VAR`);
* ``per-window-gt``: prediction translation × ``s*``, σ_trans × ``s*`` (unless the source's σ is
  already metric), residuals in metres;
* ``none``: prediction and σ as published, ground-truth translation ÷ ``s*`` (the window's
  unit), residuals in the source's unit. d² is the same in both modes.

``r = geometry.pose_residual(T_gt, T_pred)`` in our order ``[rot (rad), trans]``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from vggt_uncertainty_ros.data.types import WarningCounter
from vggt_uncertainty_ros.evaluate.config import ScaleMode
from vggt_uncertainty_ros.evaluate.sources import WindowMeasurement
from vggt_uncertainty_ros.geometry import (
    MIN_MOTION_M,
    SCALE_REASONS,
    fit_scale,
    invert_transform,
    pose_residual,
    scale_covariance,
    scale_translation,
)

__all__ = ["UNSCALED_TRANS_VAR", "WindowEval", "evaluate_window"]

#: Translation variance (unit²) of the constraints of a window without a trustworthy scale:
#: large enough that the pose graph takes only their rotation.
UNSCALED_TRANS_VAR = 1e6

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindowEval:
    """Evaluation of one window.

    Attributes:
        window: window index (source order).
        anchor_stamp_ns: stamp of frame 0.
        scale_fit: fitted ``s*`` (VGGT unit → metres), reported in both modes.
        n_scale_valid: frames that took part in the scale fit.
        scale_applied: factor applied to the predicted translation (``s*`` or 1).
        stamps_ns: ``[M]`` stamps of the evaluated frames (i > 0, ground truth, valid).
        index_in_window: ``[M]`` position i of each evaluated frame in its window.
        residual: ``[M, 6]`` ``[rot rad, trans unit]`` (metres for ``per-window-gt``).
        sigma: ``[M, 6]`` predicted σ in the residual's units (diagonal of the covariance).
        log_var_raw: ``[M, 6]`` log σ² as the source produced it (before any scale).
        constraint_stamps_ns: ``[K]`` stamps of frames i > 0 with a valid measurement.
        constraint_T: ``[K, 4, 4]`` their ``T_0_i`` in the evaluation unit.
        constraint_cov: ``[K, 6, 6]`` their covariance (our convention) in the evaluation unit.
        scale_ok: the window's scale fit is trustworthy (its translation is scored).
        scale_reason: ``ok``, ``low_motion``, ``zero_prediction`` or ``out_of_range``.
    """

    window: int
    anchor_stamp_ns: int
    scale_fit: float
    n_scale_valid: int
    scale_applied: float
    stamps_ns: np.ndarray
    index_in_window: np.ndarray
    residual: np.ndarray
    sigma: np.ndarray
    log_var_raw: np.ndarray
    constraint_stamps_ns: np.ndarray
    constraint_T: np.ndarray
    constraint_cov: np.ndarray
    scale_ok: bool = True
    scale_reason: str = "ok"


def evaluate_window(
    m: WindowMeasurement,
    T_world_cam_gt: np.ndarray,
    scale_mode: ScaleMode,
    warnings: WarningCounter,
    min_motion_m: float = MIN_MOTION_M,
) -> WindowEval | None:
    """Residuals, σ and constraints of one window.

    Args:
        m: the window's measurement (source units).
        T_world_cam_gt: ``[S, 4, 4]`` ground truth at the window's stamps (metres), NaN where
            missing.
        scale_mode: how the scale is handled (module docstring).
        min_motion_m: motion threshold of the scale fit (``geometry.fit_scale``).
        warnings: receives ``windows_without_anchor_gt`` (the window is skipped: neither its
            residuals nor its scale exist without frame 0's ground truth).

    Returns:
        The :class:`WindowEval`, or None when frame 0 has no ground truth.
    """
    found = np.all(np.isfinite(T_world_cam_gt), axis=(1, 2))
    if not found[0]:
        warnings.add("windows_without_anchor_gt", f"window {m.index} (anchor {int(m.stamps_ns[0])} ns) skipped")
        return None
    T_gt_rel = np.full_like(T_world_cam_gt, np.nan)
    T_gt_rel[found] = invert_transform(T_world_cam_gt[0])[None] @ T_world_cam_gt[found]
    fit = fit_scale(T_gt_rel[found, :3, 3], m.T_0_i[found, :3, 3], min_motion_m=min_motion_m)
    s_fit = float(fit.scale)
    scale_ok = bool(fit.ok)
    reason = SCALE_REASONS[int(fit.reason)]
    if not scale_ok:  # counted in report["scale"]["n_trans_excluded"]
        _log.debug("window %d: translation not scored (%s)", m.index, reason)
    if scale_mode is ScaleMode.PER_WINDOW_GT:
        s_applied = s_fit
        T_pred = scale_translation(m.T_0_i, s_fit)
        cov = scale_covariance(m.cov, s_fit) if m.sigma_trans_scales else np.asarray(m.cov, dtype=np.float64)
        T_gt = T_gt_rel
    else:
        s_applied = 1.0
        T_pred = np.asarray(m.T_0_i, dtype=np.float64)
        cov = np.asarray(m.cov, dtype=np.float64)
        T_gt = scale_translation(T_gt_rel, 1.0 / s_fit)

    frame = np.arange(len(m.stamps_ns))
    constrained = m.valid & (frame > 0)
    use = constrained & found
    residual = np.asarray(pose_residual(T_gt[use], T_pred[use])).reshape(-1, 6)
    var = np.diagonal(cov[use], axis1=-2, axis2=-1)
    if not scale_ok:
        residual[:, 3:] = np.nan
        cov = cov.copy()
        cov[:, 3:, :] = 0.0
        cov[:, :, 3:] = 0.0
        cov[:, 3:, 3:] = np.eye(3) * UNSCALED_TRANS_VAR
    return WindowEval(
        window=m.index,
        anchor_stamp_ns=int(m.stamps_ns[0]),
        scale_fit=s_fit,
        n_scale_valid=int(fit.n_valid),
        scale_applied=s_applied,
        stamps_ns=np.asarray(m.stamps_ns[use], dtype=np.int64),
        index_in_window=frame[use],
        residual=residual,
        sigma=np.sqrt(var).reshape(-1, 6),
        log_var_raw=np.asarray(m.log_var_raw[use], dtype=np.float64).reshape(-1, 6),
        constraint_stamps_ns=np.asarray(m.stamps_ns[constrained], dtype=np.int64),
        constraint_T=T_pred[constrained],
        constraint_cov=cov[constrained],
        scale_ok=scale_ok,
        scale_reason=reason,
    )
