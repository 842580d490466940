"""The unseen protocol's pose graph: unscored translation is bridged by odometry, never left free."""

from __future__ import annotations

import numpy as np
import pytest

from vggt_uncertainty_ros.errors import EvaluationError
from vggt_uncertainty_ros.geometry import invert_transform, pose_residual, se3_exp
from vggt_uncertainty_ros.trainer.unseen import ScoredSequence, _ScaleClass, pgo_ate

S = 4  # frames per window
STRIDE = 2
N_WINDOWS = 12
STEP = np.array([0.0, 0.02, 0.0, 0.05, 0.0, 0.01])  # per frame: a slow turn while driving (rad, m)


def _sequence(*, with_odometry: bool = True) -> ScoredSequence:
    """Every other window has no trustworthy scale: its ``T_scaled`` translation is the backbone's
    unit-length placeholder pointing the wrong way; the odometry knows the true motion."""
    rng = np.random.default_rng(3)
    n_frames = STRIDE * (N_WINDOWS - 1) + S
    T_world = [np.eye(4)]
    for _ in range(n_frames - 1):
        T_world.append(T_world[-1] @ se3_exp(STEP))
    stamps = np.array([[STRIDE * w + i for i in range(S)] for w in range(N_WINDOWS)], np.int64)
    rel = np.stack([[invert_transform(T_world[a[0]]) @ T_world[b] for b in a] for a in stamps])
    noise = np.concatenate([rng.normal(0, 1e-3, (N_WINDOWS, S, 3)), rng.normal(0, 2e-3, (N_WINDOWS, S, 3))], -1)
    T_scaled = rel @ se3_exp(noise)
    T_scaled[:, 0] = np.eye(4)
    rot_mask = np.ones((N_WINDOWS, S), bool)
    rot_mask[:, 0] = False
    trans_mask = rot_mask.copy()
    trans_mask[1::2] = False
    T_scaled[1::2, 1:, :3, 3] = [0.0, 0.0, -1.0]  # placeholder scale 1 on a wrong direction
    residual = np.zeros((N_WINDOWS, S, 6))
    residual[rot_mask] = pose_residual(rel[rot_mask], T_scaled[rot_mask])
    residual[~trans_mask, 3:] = 0.0
    odometry = _ScaleClass(
        residual=residual.copy(),
        trans_mask=trans_mask.copy(),
        log_motion=np.zeros(N_WINDOWS),
        t_source=rel[..., :3, 3] + rng.normal(0, 1e-3, (N_WINDOWS, S, 3)),
    )
    return ScoredSequence(
        name="bridged",
        features=np.zeros((N_WINDOWS, S, 2), np.float32),
        residual=residual,
        rot_mask=rot_mask,
        trans_mask=trans_mask,
        log_motion=np.zeros(N_WINDOWS),
        T_scaled=T_scaled,
        stamps_ns=stamps,
        gt_world={k: T for k, T in enumerate(T_world)},
        odometry=odometry if with_odometry else None,
    )


def test_unscored_translation_takes_the_odometry_in_every_scheme() -> None:
    seq = _sequence()
    log_var = np.log(np.broadcast_to(np.r_[np.full(3, 1e-6), np.full(3, 4e-6)], seq.residual.shape)).copy()
    ate = pgo_ate(seq, log_var)
    assert set(ate) == {"uniform", "constant_tuned", "predicted"}
    # the placeholder translations are a metre off per frame: had any scheme used them (or left
    # those frames free), the trajectory would be off by decimetres
    for scheme, value in ate.items():
        assert value is not None and value < 0.01, (scheme, value)


def test_pose_graph_without_odometry_is_a_clear_error() -> None:
    seq = _sequence(with_odometry=False)
    with pytest.raises(EvaluationError, match="odometry scale class"):
        pgo_ate(seq, np.zeros_like(seq.residual))
