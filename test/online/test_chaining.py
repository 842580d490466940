"""Windows stay chained when the model is slower than the stream (issue 14, item 1).

A deterministic simulation of the node's pipeline without threads or clocks: frames enter the
:class:`FrameStream`, complete windows enter the latest-wins queue, and the "model" (exact
relative poses from a known trajectory) takes one window each time ``over_rate`` windows have
been cut. With the :class:`WindowChainer` every processed window is chained through a frame
the previous one used; without it most windows would be bridged.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vggt_uncertainty_ros.data.windows import WindowConfig
from vggt_uncertainty_ros.errors import ConfigError
from vggt_uncertainty_ros.geometry import invert_transform, make_transform
from vggt_uncertainty_ros.online.tracking import (
    FrameStream,
    GapMotionModel,
    TrajectoryTracker,
    WindowChainer,
    WindowJob,
)
from vggt_uncertainty_ros.online.worker import LatestWinsQueue

MS = 1_000_000
PERIOD_NS = 33 * MS


def _true_cams(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    T = [np.eye(4)]
    for _ in range(n - 1):
        step = make_transform(Rotation.from_rotvec(rng.normal(0, 0.02, 3)).as_matrix(), rng.normal(0, 0.05, 3))
        T.append(T[-1] @ step)
    return np.stack(T)


def _simulate(over_rate: int, *, chained: bool, n_frames: int = 600, queue_depth: int = 2):
    cfg = WindowConfig(size=8, stride=4)
    T_world_cam = _true_cams(n_frames)
    index_of = {(k + 1) * PERIOD_NS: k for k in range(n_frames)}
    stream: FrameStream = FrameStream(cfg)
    queue: LatestWinsQueue[WindowJob] = LatestWinsQueue(queue_depth)
    tracker = TrajectoryTracker(np.eye(4))
    chainer = WindowChainer(cfg.overlap)
    poses = {}
    cut = 0

    def run_one() -> None:
        job = queue.get(0)
        if job is None:
            return
        if chained:
            job = chainer.rebase(job)
            if job is None:
                return
        idx = [index_of[s] for s in job.stamps_ns]
        T_0_i = np.stack([invert_transform(T_world_cam[idx[0]]) @ T_world_cam[i] for i in idx])
        out = tracker.process(job.stamps_ns, T_0_i, np.full((len(idx), 6), -8.0), job.epoch)
        assert out is not None
        chainer.done(job)
        poses.update({p.stamp_ns: p.T_odom_base for p in out.poses})

    for k in range(n_frames):
        result = stream.push(np.zeros((4, 6, 3), np.uint8), (k + 1) * PERIOD_NS)
        if result.stamps_ns is not None:
            queue.put(WindowJob(result.stamps_ns, result.images, tracker.epoch))
            cut += 1
            if cut % over_rate == 0:
                run_one()
    return tracker, chainer, poses, T_world_cam, index_of


def test_four_times_over_rate_leaves_no_unbridged_gap_and_exact_poses():
    tracker, chainer, poses, T_world_cam, index_of = _simulate(4, chained=True)
    assert tracker.counters.trajectory_breaks == 0
    assert tracker.counters.windows >= 30
    assert chainer.windows_rebased >= tracker.counters.windows - 2
    assert chainer.frames_skipped > 0
    # an exact model gives the exact trajectory through every re-anchored window
    origin = index_of[min(poses)]  # the first processed window's anchor: T_odom_base = I there
    for stamp, T in poses.items():
        expected = invert_transform(T_world_cam[origin]) @ T_world_cam[index_of[stamp]]
        np.testing.assert_allclose(T, expected, atol=1e-9)


def test_without_the_chainer_the_same_stream_breaks():
    tracker, *_ = _simulate(4, chained=False)
    assert tracker.counters.trajectory_breaks >= tracker.counters.windows // 2


def test_at_the_model_rate_nothing_is_rebased():
    tracker, chainer, *_ = _simulate(1, chained=True, n_frames=200)
    assert tracker.counters.trajectory_breaks == 0 and chainer.windows_rebased == 0 and chainer.frames_skipped == 0


def _job(stamps, epoch=0, shape=(4, 6, 3)):
    return WindowJob(tuple(stamps), tuple(np.full(shape, s % 255, np.uint8) for s in stamps), epoch)


def test_rebase_keeps_the_window_size_and_anchors_on_the_last_window():
    chainer = WindowChainer(4)
    chainer.done(_job(range(0, 8)))
    out = chainer.rebase(_job(range(20, 28)))
    assert out.stamps_ns == (4, 5, 6, 7, 24, 25, 26, 27)
    assert [int(im[0, 0, 0]) for im in out.images] == list(out.stamps_ns)
    assert chainer.frames_skipped == 4  # 20..23: the job's frames left out of the re-anchored window


def test_rebase_leaves_chained_stale_and_resized_windows_alone():
    chainer = WindowChainer(4)
    assert chainer.rebase(_job(range(0, 8))).stamps_ns == tuple(range(0, 8))  # nothing processed yet
    chainer.done(_job(range(0, 8)))
    chained = _job(range(4, 12))
    assert chainer.rebase(chained) is chained
    other_epoch = _job(range(20, 28), epoch=1)
    assert chainer.rebase(other_epoch) is other_epoch
    resized = _job(range(20, 28), shape=(5, 6, 3))
    assert chainer.rebase(resized) is resized
    assert chainer.rebase(_job(range(0, 8))) is not None
    with pytest.raises(ConfigError, match="overlap"):
        WindowChainer(0)


def test_unavoidable_gap_inflates_covariance_by_the_motion_model():
    model = GapMotionModel(sigma_trans_per_s=0.5, sigma_rot_rad_per_s=0.2)
    tracker = TrajectoryTracker(np.eye(4), gap_model=model)
    rel = np.stack([np.eye(4)] * 4)  # no motion: the bridged pose's covariance is the model's alone
    first = tracker.process([k * 100 * MS for k in range(4)], rel, np.full((4, 6), -30.0), tracker.epoch)
    last_cov = first.poses[-1].cov_ros
    start = 2_300 * MS  # 2 s after the last known frame (300 ms)
    out = tracker.process([start + k * 100 * MS for k in range(4)], rel, np.full((4, 6), -30.0), tracker.epoch)
    assert out.bridged and tracker.counters.trajectory_breaks == 1
    added = np.diag(out.poses[0].cov_ros) - np.diag(last_cov)
    np.testing.assert_allclose(added[:3], (0.5 * 2.0) ** 2, rtol=1e-6)
    np.testing.assert_allclose(added[3:], (0.2 * 2.0) ** 2, rtol=1e-6)
    np.testing.assert_allclose(model.covariance(-2.0), model.covariance(2.0))
    with pytest.raises(ConfigError, match="sigma_trans_per_s"):
        GapMotionModel(sigma_trans_per_s=0.0)
