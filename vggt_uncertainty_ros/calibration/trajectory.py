"""Trajectory error metrics (ATE / RPE) through evo's core library.

The numbers equal what ``evo_ape tum gt est -as`` and ``evo_rpe tum gt est -as``
(``-r angle_deg`` for rotation) print for the same two TUM files: the estimate is
Sim(3)-aligned to the ground truth with Umeyama's method (evo's
``PosePath3D.align(correct_scale=True)``), then

* ATE = APE on the translation part (metres),
* RPE = relative pose error between consecutive poses (``delta = 1`` frame), translation
  part (metres) and rotation angle (degrees), on the aligned estimate.

Poses are ``T_world_cam`` (4×4, camera-to-world, metres for the ground truth; the estimate may
be in any consistent unit, the Sim(3) alignment absorbs one global scale). The two arrays are
paired by index: row k of both belongs to ``stamps_ns[k]`` (no time synchronisation happens
here; the caller associates stamps first).
"""

from __future__ import annotations

import copy
import logging

import numpy as np
from evo.core import metrics
from evo.core.trajectory import PoseTrajectory3D

from vggt_uncertainty_ros.errors import CalibrationError

__all__ = ["MIN_POSES", "ate_rpe"]

_log = logging.getLogger(__name__)

#: fewest poses a Sim(3) alignment and one RPE pair need.
MIN_POSES = 3


def _as_poses(name: str, T: np.ndarray, n: int) -> np.ndarray:
    poses = np.asarray(T, dtype=np.float64)
    if poses.shape != (n, 4, 4):
        raise CalibrationError(f"{name} must have shape ({n}, 4, 4), got {poses.shape}")
    if not np.all(np.isfinite(poses)):
        raise CalibrationError(f"{name} contains non-finite values")
    return poses


def _trajectory(stamps_s: np.ndarray, poses: np.ndarray) -> PoseTrajectory3D:
    return PoseTrajectory3D(timestamps=stamps_s.copy(), poses_se3=[p.copy() for p in poses])


def ate_rpe(stamps_ns: np.ndarray, T_est: np.ndarray, T_gt: np.ndarray) -> dict[str, float]:
    """Sim(3)-aligned ATE and consecutive-frame RPE, computed by evo.

    Args:
        stamps_ns: ``[N]`` integer nanosecond stamps shared by both trajectories (increasing).
        T_est: ``[N, 4, 4]`` estimated ``T_world_cam`` (any consistent unit; aligned by Sim(3)).
        T_gt: ``[N, 4, 4]`` ground-truth ``T_world_cam`` in metres.

    Returns:
        ``ate_rmse_m``, ``ate_mean_m``, ``ate_median_m``, ``ate_max_m`` (metres),
        ``rpe_trans_rmse_m`` (metres), ``rpe_rot_rmse_deg`` (degrees), ``sim3_scale`` (the
        Umeyama scale applied to the estimate) and ``n_poses``.

    Raises:
        CalibrationError: on shape mismatch, non-finite poses, fewer than ``MIN_POSES`` poses
            or stamps that do not increase strictly.
    """
    stamps = np.asarray(stamps_ns)
    if stamps.ndim != 1:
        raise CalibrationError(f"stamps_ns must be 1-D, got shape {stamps.shape}")
    n = int(stamps.shape[0])
    if n < MIN_POSES:
        raise CalibrationError(f"ATE/RPE need at least {MIN_POSES} poses, got {n}")
    if np.any(np.diff(stamps.astype(np.int64)) <= 0):
        raise CalibrationError("stamps_ns must increase strictly")
    est = _as_poses("T_est", T_est, n)
    gt = _as_poses("T_gt", T_gt, n)
    stamps_s = stamps.astype(np.int64).astype(np.float64) * 1e-9

    traj_gt = _trajectory(stamps_s, gt)
    traj_est = _trajectory(stamps_s, est)
    try:
        _, _, scale = traj_est.align(traj_gt, correct_scale=True)
    except Exception as err:  # evo raises GeometryException on degenerate input
        raise CalibrationError(f"Sim(3) alignment failed: {err}") from err

    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((traj_gt, traj_est))
    ape_stats = ape.get_all_statistics()

    out: dict[str, float] = {
        "ate_rmse_m": float(ape_stats["rmse"]),
        "ate_mean_m": float(ape_stats["mean"]),
        "ate_median_m": float(ape_stats["median"]),
        "ate_max_m": float(ape_stats["max"]),
    }
    for key, relation in (
        ("rpe_trans_rmse_m", metrics.PoseRelation.translation_part),
        ("rpe_rot_rmse_deg", metrics.PoseRelation.rotation_angle_deg),
    ):
        rpe = metrics.RPE(relation, delta=1, delta_unit=metrics.Unit.frames)
        rpe.process_data((copy.deepcopy(traj_gt), copy.deepcopy(traj_est)))
        out[key] = float(rpe.get_statistic(metrics.StatisticsType.rmse))
    out["sim3_scale"] = float(scale)
    out["n_poses"] = n
    _log.debug(
        "ATE %.4f m, RPE %.4f m / %.4f deg over %d poses",
        out["ate_rmse_m"],
        out["rpe_trans_rmse_m"],
        out["rpe_rot_rmse_deg"],
        n,
    )
    return out
