"""Window evaluations → trajectory estimate and pose-graph results.

Nodes are the unique frame stamps that appear in any evaluated window's constraints (anchors
included), sorted. The dead-reckoned estimate (``traj_est``) chains windows in source order
(:func:`~vggt_uncertainty_ros.evaluate.pgo.chain_poses`); the pose graph optimises the same
constraints under each weighting scheme, with and without a Huber kernel.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vggt_uncertainty_ros.calibration.trajectory import MIN_POSES, ate_rpe
from vggt_uncertainty_ros.data.types import WarningCounter
from vggt_uncertainty_ros.errors import CalibrationError, EvaluationError
from vggt_uncertainty_ros.evaluate.pgo import (
    Constraint,
    Weighting,
    chain_poses,
    optimize,
    translation_pieces,
    weighted_constraints,
)
from vggt_uncertainty_ros.evaluate.residuals import UNSCALED_TRANS_VAR, WindowEval

__all__ = ["GraphInputs", "build_constraints", "pgo_results", "trajectory_metrics"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GraphInputs:
    """Constraints over frame nodes.

    Attributes:
        stamps_ns: ``[N]`` sorted unique node stamps.
        constraints: measurements in window order (node indices into ``stamps_ns``).
        T_chain: ``[N, 4, 4]`` dead-reckoned ``T_world_cam`` of every node (evaluation unit).
        chain_breaks: anchors that no earlier window reached.
        translation_pieces: pieces of the graph when only links that carry a translation count
            (1 when translation is constrained everywhere; see :func:`pgo.translation_pieces`).
    """

    stamps_ns: np.ndarray
    constraints: list[Constraint]
    T_chain: np.ndarray
    chain_breaks: int
    translation_pieces: int = 1


def build_constraints(evals: Sequence[WindowEval], warnings: WarningCounter) -> GraphInputs:
    """Collect the constraints of all windows and dead-reckon an initial trajectory.

    Raises:
        EvaluationError: no window has a constraint.
    """
    anchors = [e.anchor_stamp_ns for e in evals if e.constraint_stamps_ns.size]
    stamps = np.unique(np.concatenate([np.asarray(anchors, np.int64)] + [e.constraint_stamps_ns for e in evals]))
    if not anchors:
        raise EvaluationError("no window has a usable measurement; nothing to chain")
    node = {int(s): k for k, s in enumerate(stamps.tolist())}
    constraints = [
        Constraint(node[e.anchor_stamp_ns], node[int(s)], T, cov)
        for e in evals
        for s, T, cov in zip(e.constraint_stamps_ns.tolist(), e.constraint_T, e.constraint_cov)
    ]
    T_chain, breaks = chain_poses(len(stamps), constraints)
    if breaks:
        warnings.add("chain_breaks", "a window's anchor was not in an earlier window; zero motion assumed", breaks)
    pieces = translation_pieces(constraints, UNSCALED_TRANS_VAR)
    if pieces > 1:
        warnings.add(
            "pgo_translation_gaps",
            f"the pose graph's translation falls into {pieces} pieces: only rotation links them (windows without "
            "a trustworthy scale), so the translation between them is free and the pose-graph ATE depends on where "
            "the optimiser stops",
            pieces - 1,
        )
    return GraphInputs(stamps, constraints, T_chain, breaks, pieces)


def trajectory_metrics(stamps_ns: np.ndarray, T_est: np.ndarray, T_gt: np.ndarray) -> dict[str, float] | None:
    """evo ATE/RPE over the nodes that have a finite estimate and ground truth (None if < 3)."""
    ok = np.all(np.isfinite(T_est), axis=(1, 2)) & np.all(np.isfinite(T_gt), axis=(1, 2))
    if int(ok.sum()) < MIN_POSES:
        _log.warning("only %d poses with estimate and ground truth; no ATE/RPE", int(ok.sum()))
        return None
    try:
        return ate_rpe(stamps_ns[ok], T_est[ok], T_gt[ok])
    except CalibrationError as err:
        _log.warning("ATE/RPE failed: %s", err)
        return None


def pgo_results(
    graph: GraphInputs, T_gt: np.ndarray, tuned_var: np.ndarray, huber_k: float
) -> tuple[dict[str, dict[str, float | None]], dict[str, np.ndarray]]:
    """Optimise under each weighting, plain and Huber, and score each with ATE.

    Args:
        graph: constraints and initial values.
        T_gt: ``[N, 4, 4]`` ground truth of the nodes (NaN where missing), metres.
        tuned_var: ``[6]`` per-component residual variance (``constant_tuned``).
        huber_k: Huber threshold on the whitened error.

    Returns:
        ``({scheme: {"ate_rmse_m", "ate_rmse_m_huber"}}, {scheme: optimised poses [N,4,4]})``.
    """
    results: dict[str, dict[str, float | None]] = {}
    poses: dict[str, np.ndarray] = {}
    n = len(graph.stamps_ns)
    for scheme in Weighting:
        cons = weighted_constraints(graph.constraints, scheme, tuned_var)
        entry: dict[str, float | None] = {}
        for key, k in (("ate_rmse_m", None), ("ate_rmse_m_huber", huber_k)):
            try:
                T_opt = optimize(n, cons, graph.T_chain, huber_k=k)
            except EvaluationError as err:
                _log.warning("pose graph (%s, %s) failed: %s", scheme.value, key, err)
                entry[key] = None
                continue
            metrics = trajectory_metrics(graph.stamps_ns, T_opt, T_gt)
            entry[key] = None if metrics is None else metrics["ate_rmse_m"]
            if k is None:
                poses[scheme.value] = T_opt
        results[scheme.value] = entry
        _log.info(
            "pose graph %-14s ATE %s m, with Huber %s m", scheme.value, entry["ate_rmse_m"], entry["ate_rmse_m_huber"]
        )
    return results, poses
