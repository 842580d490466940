"""From the head's raw output to the log-variance a consumer publishes (numpy, no torch).

One function shared by the node's estimator, the evaluator, the calibrate command and the
benchmarks, so that every consumer applies a head checkpoint's scale convention and its
post-hoc recalibration the same way:

1. ``relative`` convention: the head predicts σ_trans relative to the window's motion
   ``m = mean_{i>0} ‖t_pred_i‖`` (``geometry.window_motion``, backbone units), so
   ``log σ²_trans += 2 log m``: the result is in the backbone's units, like a ``vggt`` head;
2. recalibration (``HeadMetadata.recalibration``): ``log σ²_blk += log f_blk``.

Order ``[rot (3) rad², trans (3)]``; translation in backbone units (``vggt``/``relative``) or
metres (``metric``).
"""

from __future__ import annotations

import numpy as np

from vggt_uncertainty_ros.calibration.recalibration import Recalibration, apply_recalibration
from vggt_uncertainty_ros.geometry import window_motion
from vggt_uncertainty_ros.geometry.residuals import ScaleConvention
from vggt_uncertainty_ros.head.checkpoint import HeadMetadata

__all__ = ["head_output_log_var", "recalibration_of"]


def recalibration_of(meta: HeadMetadata | None) -> Recalibration | None:
    """The checkpoint's :class:`Recalibration`, or None when it has none."""
    if meta is None or not meta.recalibration:
        return None
    return Recalibration.from_dict(meta.recalibration)


def head_output_log_var(
    log_var_head: np.ndarray,
    T_0_i: np.ndarray,
    meta: HeadMetadata | None,
    *,
    recalibrate: bool = True,
) -> np.ndarray:
    """Published log σ² ``[..., S, 6]`` of one or more windows.

    Args:
        log_var_head: ``[..., S, 6]`` the head's output (rot, trans).
        T_0_i: ``[..., S, 4, 4]`` the backbone's window-relative poses (backbone units).
        meta: the head's metadata (None: output unchanged, e.g. a constant σ).
        recalibrate: apply the stored recalibration factors (the default everywhere but
            when fitting them).

    Returns:
        float64 log σ² with the convention resolved and the factors applied.
    """
    lv = np.array(log_var_head, dtype=np.float64, copy=True)
    if meta is None:
        return lv
    if ScaleConvention(meta.scale_convention) is ScaleConvention.RELATIVE:
        m = np.asarray(window_motion(np.asarray(T_0_i, dtype=np.float64)[..., :3, 3]))
        lv[..., 3:] += 2.0 * np.log(m)[..., None, None]
    if recalibrate:
        lv = apply_recalibration(lv, recalibration_of(meta))
    return lv
