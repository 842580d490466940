"""Pose-graph optimisation (GTSAM) over the evaluator's window constraints.

Each window contributes one ``BetweenFactorPose3`` per frame i > 0, from its frame 0 (the
anchor) to frame i, measuring ``T_0_i``. Consecutive windows share frames (the next anchor is a
frame of an earlier window), so the graph chains them. Nodes are frames, keyed by their index in
the sorted list of all frame stamps.

Covariances enter GTSAM unchanged: our residual convention (``T_pred = T_gt Exp(r)``,
``r = [rot(3), trans(3)]``, right perturbation, see docs/ARCHITECTURE.md) is exactly GTSAM's
``Pose3`` tangent convention (``retract(ξ) = T·Expmap(ξ)`` with ``ξ = [ω, v]``) and
``BetweenFactorPose3``'s error ``Logmap(measured⁻¹ · T_a⁻¹ T_b)``; test_eval_pgo.py proves it.

Weighting schemes (:class:`Weighting`):

* ``uniform``: identity covariance for every constraint (rad² and unit², unweighted least squares);
* ``constant_tuned``: one diagonal covariance for every constraint, the per-component mean
  squared residual of the same data (the maximum-likelihood zero-mean diagonal Gaussian), i.e.
  the best a user could hand-tune with ground truth;
* ``predicted``: each constraint's own predicted covariance.

Every scheme is optimised with plain least squares and with a Huber kernel on the whitened
error.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import gtsam
import numpy as np

from vggt_uncertainty_ros.errors import EvaluationError
from vggt_uncertainty_ros.geometry import residual_cov_to_gtsam

__all__ = [
    "Constraint",
    "Weighting",
    "build_graph",
    "chain_poses",
    "optimize",
    "translation_pieces",
    "weighted_constraints",
]

_log = logging.getLogger(__name__)

#: standard deviation of the loose factor that bridges a break in the window chain
#: (rad and translation units): it fixes the gauge of a disconnected piece, nothing more.
BRIDGE_SIGMA = 1.0e3


class Weighting(str, Enum):
    """How constraints are weighted in the pose graph."""

    UNIFORM = "uniform"
    CONSTANT_TUNED = "constant_tuned"
    PREDICTED = "predicted"


@dataclass(frozen=True)
class Constraint:
    """One relative-pose measurement ``T_a_b`` between graph nodes ``a`` (anchor) and ``b``.

    Attributes:
        a: node index of the window's frame 0 (the anchor).
        b: node index of frame i.
        T_a_b: 4×4 pose of camera b in camera a, translation in the evaluation unit
            (metres after a ``per-window-gt`` scale fit, else the source's unit).
        cov: 6×6 covariance in our residual convention (``[rot(3) rad, trans(3) unit]``,
            right perturbation in frame b), same unit as ``T_a_b``; = GTSAM's tangent.
    """

    a: int
    b: int
    T_a_b: np.ndarray
    cov: np.ndarray


def weighted_constraints(
    constraints: Sequence[Constraint], weighting: Weighting, tuned_var: np.ndarray | None = None
) -> list[Constraint]:
    """Return the constraints with the covariance of the chosen weighting scheme.

    Args:
        constraints: measurements with their predicted covariance.
        weighting: the scheme.
        tuned_var: ``[6]`` per-component variance (rot rad², trans unit²) for
            ``constant_tuned``.

    Raises:
        EvaluationError: if ``constant_tuned`` is asked without a positive ``tuned_var``.
    """
    if weighting is Weighting.PREDICTED:
        return list(constraints)
    if weighting is Weighting.UNIFORM:
        cov = np.eye(6)
    else:
        if tuned_var is None or np.shape(tuned_var) != (6,) or not np.all(np.asarray(tuned_var) > 0):
            raise EvaluationError(f"constant_tuned weighting needs 6 positive variances, got {tuned_var}")
        cov = np.diag(np.asarray(tuned_var, dtype=np.float64))
    return [Constraint(c.a, c.b, c.T_a_b, cov) for c in constraints]


def chain_poses(n_nodes: int, constraints: Sequence[Constraint]) -> tuple[np.ndarray, int]:
    """Dead-reckon node poses from the constraints (first measurement of a node wins).

    Constraints are processed in order; node 0 (or the first anchor) is the origin. An anchor
    that no earlier constraint reached is placed at the most recently placed node (zero motion
    across the break) and counted as a chain break.

    Returns:
        ``(T_world_node[n_nodes, 4, 4], n_breaks)``; nodes never reached keep NaN poses.
    """
    poses = np.full((n_nodes, 4, 4), np.nan)
    placed = np.zeros(n_nodes, dtype=bool)
    last: int | None = None
    breaks = 0
    for c in constraints:
        if not placed[c.a]:
            if last is None:
                poses[c.a] = np.eye(4)
            else:
                poses[c.a] = poses[last]
                breaks += 1
            placed[c.a] = True
        if not placed[c.b]:
            poses[c.b] = poses[c.a] @ c.T_a_b
            placed[c.b] = True
            last = c.b
    return poses, breaks


def _noise(cov: np.ndarray, huber_k: float | None) -> gtsam.noiseModel.Base:
    base = gtsam.noiseModel.Gaussian.Covariance(residual_cov_to_gtsam(cov))
    if huber_k is None:
        return base
    return gtsam.noiseModel.Robust.Create(gtsam.noiseModel.mEstimator.Huber.Create(huber_k), base)


def build_graph(
    n_nodes: int,
    constraints: Sequence[Constraint],
    initial: np.ndarray,
    *,
    huber_k: float | None = None,
) -> tuple[gtsam.NonlinearFactorGraph, gtsam.Values]:
    """Build the factor graph and its initial values.

    A tight prior fixes the first anchor at its initial pose (the gauge; ATE is Sim(3)-aligned
    afterwards, so where it sits does not matter). Nodes not reached by the constraint chain
    are bridged to the previous node by a loose identity factor (``BRIDGE_SIGMA``).

    Args:
        n_nodes: number of nodes (frames).
        constraints: measurements with the covariance to use.
        initial: ``[n_nodes, 4, 4]`` initial ``T_world_node``, finite for every node used.
        huber_k: Huber threshold on the whitened error, or None for plain least squares.
    """
    graph = gtsam.NonlinearFactorGraph()
    values = gtsam.Values()
    used = sorted({c.a for c in constraints} | {c.b for c in constraints})
    if not used:
        raise EvaluationError("the pose graph has no constraints")
    for node in used:
        if not np.all(np.isfinite(initial[node])):
            raise EvaluationError(f"node {node} has no finite initial pose")
        values.insert(node, gtsam.Pose3(initial[node]))
    first = constraints[0].a
    graph.add(gtsam.PriorFactorPose3(first, gtsam.Pose3(initial[first]), gtsam.noiseModel.Isotropic.Sigma(6, 1e-6)))
    for c in constraints:
        graph.add(gtsam.BetweenFactorPose3(c.a, c.b, gtsam.Pose3(c.T_a_b), _noise(c.cov, huber_k)))
    _bridge_components(graph, used, constraints, initial)
    return graph, values


def _find(parent: dict[int, int], n: int) -> int:
    """Root of ``n`` in a union-find forest (path halving)."""
    while parent[n] != n:
        parent[n] = parent[parent[n]]
        n = parent[n]
    return n


def translation_pieces(constraints: Sequence[Constraint], max_var: float) -> int:
    """Number of pieces the graph falls into when only translation-carrying links count.

    A constraint whose translation variance reaches ``max_var`` (e.g. a window without a
    trustworthy scale) links its frames in rotation only; where such links are the only ones
    between two parts of the trajectory, the translation between the parts is unconstrained.
    """
    parent = {n: n for c in constraints for n in (c.a, c.b)}
    for c in constraints:
        if np.max(np.diagonal(c.cov)[3:]) < max_var:
            parent[_find(parent, c.a)] = _find(parent, c.b)
    return len({_find(parent, n) for n in parent})


def _bridge_components(
    graph: gtsam.NonlinearFactorGraph, used: list[int], constraints: Sequence[Constraint], initial: np.ndarray
) -> None:
    parent = {n: n for n in used}
    for c in constraints:
        parent[_find(parent, c.a)] = _find(parent, c.b)
    loose = gtsam.noiseModel.Isotropic.Sigma(6, BRIDGE_SIGMA)
    for prev, node in itertools.pairwise(used):
        if _find(parent, prev) != _find(parent, node):
            rel = np.linalg.inv(initial[prev]) @ initial[node]
            graph.add(gtsam.BetweenFactorPose3(prev, node, gtsam.Pose3(rel), loose))
            parent[_find(parent, prev)] = _find(parent, node)


def optimize(
    n_nodes: int,
    constraints: Sequence[Constraint],
    initial: np.ndarray,
    *,
    huber_k: float | None = None,
    max_iterations: int = 100,
) -> np.ndarray:
    """Optimise the pose graph with Levenberg-Marquardt.

    Returns:
        ``[n_nodes, 4, 4]`` optimised ``T_world_node`` (NaN for nodes without constraints),
        translation in the constraints' unit.
    """
    graph, values = build_graph(n_nodes, constraints, initial, huber_k=huber_k)
    params = gtsam.LevenbergMarquardtParams()
    params.setMaxIterations(max_iterations)
    try:
        result = gtsam.LevenbergMarquardtOptimizer(graph, values, params).optimize()
    except RuntimeError as err:
        raise EvaluationError(f"pose-graph optimisation failed: {err}") from err
    out = np.full((n_nodes, 4, 4), np.nan)
    for node in range(n_nodes):
        if result.exists(node):
            out[node] = result.atPose3(node).matrix()
    _log.debug(
        "pose graph: %d nodes, %d factors, error %.3g -> %.3g",
        values.size(),
        graph.size(),
        graph.error(values),
        graph.error(result),
    )
    return out
