"""Window-relative poses, the per-window scale fit and the pose residual.

Frames and conventions (docs/ARCHITECTURE.md):

* Window-relative pose of frame i: ``T_0_i = inv(T_world_cam0) @ T_world_cami``, the pose of
  camera i in camera 0 (OpenCV axes); ``T_0_0 = I``. From VGGT extrinsics
  (``E_i = T_cami_world``): ``T_0_i = E_0 @ inv(E_i)``.
* Scale fit (``per-window-gt``): ``s* = Σ(t_gt·t_pred)/Σ‖t_pred‖²`` over frames with
  ``‖t_gt‖ > 2 cm``. The scale protocol (issue 12): a window whose fit is not trustworthy —
  fewer than 2 such frames (not enough motion), the selected predicted translations all zero,
  or ``s*`` outside ``[0.01, 100]`` — is flagged ``ok = False`` with its reason; its
  translation is excluded from training and evaluation (masked and counted), never given
  ``s = 1`` or a clamped scale as if it were a measurement.
* Residual: ``r = Log(inv(T_gt) @ T_pred)``, i.e. ``T_pred = T_gt @ Exp(r)`` (right
  perturbation). Order ``[φx, φy, φz, ρx, ρy, ρz]`` — rotation first. **Both blocks are
  expressed in the ground-truth camera frame i** (the frame of ``T_gt``'s child); the
  rotation block is in radians, the translation block ``ρ`` (the SE(3) ``V⁻¹ t`` part) in
  the units of ``T_gt`` (metres after the scale fit).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from vggt_uncertainty_ros.errors import GeometryError
from vggt_uncertainty_ros.geometry._shapes import as_float64
from vggt_uncertainty_ros.geometry.se3 import invert_transform, make_transform, se3_log

__all__ = [
    "ScaleConvention",
    "scale_covariance",
    "scale_translation",
    "MIN_MOTION_M",
    "MIN_RELATIVE_MOTION",
    "SCALE_REASONS",
    "window_motion",
    "SCALE_CLAMP",
    "ScaleFit",
    "fit_scale",
    "pose_residual",
    "relative_from_extrinsics",
    "window_relative",
]


class ScaleConvention(str, Enum):
    """Unit of a head's translation log-variance (docs/ARCHITECTURE.md, "Scale convention").

    * ``VGGT``: VGGT's normalised units; whoever scales the translation by ``s`` (ground-truth
      fit, odometry fit, or ``s = 1``) multiplies σ_trans by ``s`` too.
    * ``METRIC``: metres of the scaled prediction; valid only where a metric scale is applied.

    * ``RELATIVE``: σ_trans relative to the window's own predicted motion ``m`` (the mean
      ``‖t_pred‖`` over frames 1…S-1, in the backbone's units): σ_trans = σ_head · m in the
      backbone's units, so it survives an arbitrary per-window scale of the backbone and
      needs no ground truth at run time. The estimator converts it to backbone units
      (``log_var + 2 log m``), after which it is handled like ``VGGT``.
    """

    VGGT = "vggt"
    METRIC = "metric"
    RELATIVE = "relative"


MIN_MOTION_M = 0.02
"""Ground-truth translation (metres) a frame needs to take part in the scale fit."""

SCALE_CLAMP = (0.01, 100.0)
"""Range of a trustworthy fitted scale; a fit outside it flags the window (no clamping)."""

MIN_RELATIVE_MOTION = 1e-6
"""Floor of the window motion ``m`` of the ``relative`` convention (backbone units); a window
whose predicted translations are all (numerically) zero would otherwise get σ_trans = 0."""

SCALE_REASONS = ("ok", "low_motion", "zero_prediction", "out_of_range")
"""Codes of :attr:`ScaleFit.reason` (index into this tuple)."""


def window_motion(t_pred: np.ndarray) -> np.ndarray:
    """Mean ``‖t_i‖`` over frames 1…S-1 of ``t_pred[..., S, 3]`` (frame 0 is the reference).

    Frames with a non-finite translation (not estimated) or an exactly zero one (a backbone
    that could not observe it, e.g. ``geometric`` without parallax) are left out of the mean:
    the unit is the motion that was measured. Counting such frames as zero motion shrank the
    unit, and with it σ_trans, in the windows where translation is hardest (bench-unseen: the
    few windows with 2 of 7 frames observable held most of the translation d²).

    The motion scale of the ``relative`` convention, floored at :data:`MIN_RELATIVE_MOTION`.
    """
    t = np.asarray(t_pred, dtype=np.float64)
    if t.ndim < 2 or t.shape[-1] != 3:
        raise GeometryError(f"t_pred must have shape [..., S, 3], got {list(t.shape)}")
    if t.shape[-2] < 2:
        raise GeometryError("window_motion needs at least 2 frames")
    norms = np.linalg.norm(t[..., 1:, :], axis=-1)
    finite = np.isfinite(norms) & (norms > 0.0)  # not estimated (NaN) or not observed (0): left out
    n = finite.sum(-1)
    m = np.where(finite, norms, 0.0).sum(-1) / np.maximum(n, 1)
    return np.maximum(m, MIN_RELATIVE_MOTION)


def window_relative(T_world_cam: np.ndarray) -> np.ndarray:
    """Poses of every frame in the window's frame 0.

    Args:
        T_world_cam: ``[..., S, 4, 4]`` camera poses in a common world frame.

    Returns:
        ``[..., S, 4, 4]`` ``T_0_i = inv(T_world_cam0) @ T_world_cami`` (``T_0_0 = I``).
    """
    T = as_float64(T_world_cam, (4, 4), "T_world_cam")
    if T.ndim < 3:
        raise GeometryError(f"T_world_cam must have shape [..., S, 4, 4], got {list(T.shape)}")
    return invert_transform(T[..., :1, :, :]) @ T


def relative_from_extrinsics(E: np.ndarray) -> np.ndarray:
    """Window-relative poses from VGGT extrinsics.

    Args:
        E: ``[..., S, 3, 4]`` (or ``[..., S, 4, 4]``) camera-from-world extrinsics
            ``T_cami_world`` (OpenCV axes, VGGT units).

    Returns:
        ``[..., S, 4, 4]`` ``T_0_i = E_0 @ inv(E_i)``, pose of camera i in camera 0.
    """
    E = np.asarray(E, dtype=np.float64)
    if E.ndim < 3:
        raise GeometryError(f"E must have shape [..., S, 3, 4], got {list(E.shape)}")
    if tuple(E.shape[-2:]) == (4, 4):
        E = E[..., :3, :]
    E = as_float64(E, (3, 4), "E")
    E4 = make_transform(E[..., :3, :3], E[..., :3, 3])
    return E4[..., :1, :, :] @ invert_transform(E4)


@dataclass(frozen=True)
class ScaleFit:
    """Result of :func:`fit_scale` for a batch of windows.

    Attributes:
        scale: ``[...]`` fitted scale ``s`` per window (multiply the predicted translation,
            and σ_trans, by it) where ``ok``; a placeholder 1.0 elsewhere, which must not be
            used as a measurement (mask the window's translation).
        n_valid: ``[...]`` number of frames with ground-truth motion above the threshold.
        valid: ``[..., S]`` which frames took part in the fit.
        ok: ``[...]`` bool, the window has a trustworthy scale.
        raw: ``[...]`` the unclamped least-squares scale (NaN where there is no fit).
        reason: ``[...]`` int index into :data:`SCALE_REASONS` (0 = ok).
    """

    scale: np.ndarray
    n_valid: np.ndarray
    valid: np.ndarray
    ok: np.ndarray | None = None
    raw: np.ndarray | None = None
    reason: np.ndarray | None = None


def fit_scale(
    t_gt: np.ndarray,
    t_pred: np.ndarray,
    min_motion_m: float = MIN_MOTION_M,
    min_valid: int = 2,
    clamp: tuple[float, float] = SCALE_CLAMP,
) -> ScaleFit:
    """Least-squares scale mapping predicted onto ground-truth window translations.

    Args:
        t_gt: ``[..., S, 3]`` ground-truth translations of ``T_0_i`` (metres).
        t_pred: ``[..., S, 3]`` predicted translations of ``T_0_i`` (VGGT units).
        min_motion_m: frames with ``‖t_gt‖ > min_motion_m`` are used.
        min_valid: fewer valid frames than this flags the window (``low_motion``).
        clamp: ``(lo, hi)`` range of a trustworthy scale; outside it the window is flagged
            (``out_of_range``), not clamped.

    Returns:
        :class:`ScaleFit` with ``s = Σ(t_gt·t_pred)/Σ‖t_pred‖²`` over the valid frames where
        ``ok``, 1.0 (placeholder) elsewhere. Arrays are numpy (float64 / int64 / bool).
    """
    t_gt = as_float64(t_gt, (3,), "t_gt")
    t_pred = as_float64(t_pred, (3,), "t_pred")
    if tuple(t_gt.shape) != tuple(t_pred.shape):
        raise GeometryError(f"t_gt and t_pred must have equal shapes, got {list(t_gt.shape)} and {list(t_pred.shape)}")
    lo, hi = clamp
    if not 0 < lo <= hi:
        raise GeometryError(f"scale clamp must satisfy 0 < lo <= hi, got {clamp}")
    valid = np.sum(t_gt * t_gt, -1) > min_motion_m**2
    w = valid * 1.0
    num = np.sum(w * np.sum(t_gt * t_pred, -1), -1)
    den = np.sum(w * np.sum(t_pred * t_pred, -1), -1)
    n_valid = np.sum(valid * 1, -1)
    enough = n_valid >= min_valid
    fitted = enough & (den > 0)
    raw = num / np.where(fitted, den, 1.0)
    ok = fitted & (raw >= lo) & (raw <= hi)
    scale = np.where(ok, raw, 1.0)
    reason = np.where(ok, 0, np.where(~enough, 1, np.where(~fitted, 2, 3))).astype(np.int64)
    return ScaleFit(scale=scale, n_valid=n_valid, valid=valid, ok=ok, raw=np.where(fitted, raw, np.nan), reason=reason)


def pose_residual(T_gt: np.ndarray, T_pred: np.ndarray) -> np.ndarray:
    """Right-perturbation residual ``r = Log(inv(T_gt) @ T_pred)``.

    Args:
        T_gt: ``[..., 4, 4]`` ground-truth window-relative poses ``T_0_i``.
        T_pred: ``[..., 4, 4]`` predicted ``T_0_i`` with the translation already scaled.

    Returns:
        ``[..., 6]`` = ``[r_rot (rad), r_trans]``, both expressed in the ground-truth camera
        frame i; ``r_trans`` in the units of the translations (metres after the scale fit).
    """
    T_gt = as_float64(T_gt, (4, 4), "T_gt")
    T_pred = as_float64(T_pred, (4, 4), "T_pred")
    return se3_log(invert_transform(T_gt) @ T_pred)


def scale_translation(T: np.ndarray, s: float) -> np.ndarray:
    """Copy of ``T[..., 4, 4]`` with the translation multiplied by the scale ``s`` (numpy float64)."""
    out = np.array(T, dtype=np.float64, copy=True)
    out[..., :3, 3] *= s
    return out


def scale_covariance(cov: np.ndarray, s: float) -> np.ndarray:
    """Covariance ``[..., 6, 6]`` in our order ``[rot, trans]`` of a translation scaled by ``s``.

    ``D Σ D`` with ``D = diag(1, 1, 1, s, s, s)``: σ_trans is multiplied by ``s``, rotation is
    unchanged (a ``vggt``-convention head's covariance under the applied scale).
    """
    d = np.array([1.0, 1.0, 1.0, s, s, s])
    return np.asarray(cov, dtype=np.float64) * d[:, None] * d[None, :]
