"""Tests of the node's ROS-free logic: frame admission, windows, chaining, scale, covariances."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vggt_uncertainty_ros.data.windows import WindowConfig
from vggt_uncertainty_ros.errors import ConfigError
from vggt_uncertainty_ros.geometry import invert_transform, make_transform
from vggt_uncertainty_ros.online.estimator import NonFiniteOutputError
from vggt_uncertainty_ros.online.tracking import FrameStream, StreamEvent, TrajectoryTracker, check_stamp

MS = 1_000_000


def _image(h: int = 6, w: int = 8) -> np.ndarray:
    return np.zeros((h, w, 3), np.uint8)


def _true_cams(n: int, seed: int = 0) -> np.ndarray:
    """``[n,4,4]`` camera poses in a world frame: a smooth random walk (metres, rad)."""
    rng = np.random.default_rng(seed)
    T = [np.eye(4)]
    for _ in range(n - 1):
        step = make_transform(Rotation.from_rotvec(rng.normal(0, 0.05, 3)).as_matrix(), rng.normal(0, 0.1, 3))
        T.append(T[-1] @ step)
    return np.stack(T)


def _window_rel(T_world_cam: np.ndarray, idx: list[int]) -> np.ndarray:
    return np.stack([invert_transform(T_world_cam[idx[0]]) @ T_world_cam[i] for i in idx])


# -- FrameStream ---------------------------------------------------------------------------


def test_stream_cuts_overlapping_windows():
    stream = FrameStream(WindowConfig(size=4, stride=2))
    windows = []
    for k in range(8):
        r = stream.push(_image(), (k + 1) * 100 * MS)
        assert r.event is StreamEvent.ACCEPTED
        if r.stamps_ns is not None:
            windows.append(r.stamps_ns)
    assert windows == [
        tuple(s * 100 * MS for s in (1, 2, 3, 4)),
        tuple(s * 100 * MS for s in (3, 4, 5, 6)),
        tuple(s * 100 * MS for s in (5, 6, 7, 8)),
    ]


def test_stream_drops_duplicate_stamps():
    stream = FrameStream(WindowConfig(size=3, stride=1))
    assert stream.push(_image(), 10).event is StreamEvent.ACCEPTED
    assert stream.push(_image(), 10).event is StreamEvent.DUPLICATE_STAMP
    assert stream.push(_image(), 20).event is StreamEvent.ACCEPTED
    r = stream.push(_image(), 30)
    assert r.stamps_ns == (10, 20, 30)


def test_stream_resets_only_when_stamps_persistently_go_backwards():
    stream = FrameStream(WindowConfig(size=3, stride=1), backwards_to_reset=3)
    for s in (100, 200):
        stream.push(_image(), s)
    assert stream.push(_image(), 50).event is StreamEvent.OUT_OF_ORDER
    assert stream.push(_image(), 60).event is StreamEvent.OUT_OF_ORDER
    r = stream.push(_image(), 70)
    assert r.event is StreamEvent.STAMP_BACKWARDS and r.event.resets and r.stamps_ns is None
    stream.push(_image(), 80)
    assert stream.push(_image(), 90).stamps_ns == (70, 80, 90)


def test_a_single_late_frame_is_dropped_and_the_stream_goes_on():
    stream = FrameStream(WindowConfig(size=3, stride=1))
    events = [stream.push(_image(), s).event for s in (100, 200, 150, 300)]
    assert events == [StreamEvent.ACCEPTED, StreamEvent.ACCEPTED, StreamEvent.OUT_OF_ORDER, StreamEvent.ACCEPTED]
    assert stream.push(_image(), 400).stamps_ns == (200, 300, 400)
    # late frames that do not form one restarted stream never add up to a reset
    events = [stream.push(_image(), s).event for s in (350, 340, 330, 320)]
    assert events == [StreamEvent.OUT_OF_ORDER] * 4


def test_a_clock_going_back_resets_at_once():
    stream = FrameStream(WindowConfig(size=3, stride=1), clock_jump_s=1.0)
    assert stream.push(_image(), 100, now_ns=50 * 10**9).event is StreamEvent.ACCEPTED
    assert stream.push(_image(), 200, now_ns=int(49.5 * 10**9)).event is StreamEvent.ACCEPTED  # jitter
    r = stream.push(_image(), 10, now_ns=10**9)
    assert r.event is StreamEvent.CLOCK_RESET and r.event.resets


@pytest.mark.parametrize(
    ("sec", "nanosec", "now_ns", "bad"),
    [
        (5, 0, None, False),
        (5, 999_999_999, None, False),
        (5, 1_000_000_000, None, True),
        (5, -1, None, True),
        (-1, 0, None, True),
        (100, 0, 95 * 10**9, False),
        (106, 0, 95 * 10**9, True),
        (10**6, 0, 0, False),  # simulated time not received yet: no future check
    ],
)
def test_check_stamp(sec, nanosec, now_ns, bad):
    reason = check_stamp(sec, nanosec, now_ns, max_future_s=10.0)
    assert (reason is not None) is bad


def test_stream_restarts_window_on_size_change():
    stream = FrameStream(WindowConfig(size=3, stride=1))
    stream.push(_image(6, 8), 1)
    stream.push(_image(6, 8), 2)
    r = stream.push(_image(4, 8), 3)
    assert r.event is StreamEvent.SIZE_CHANGED and r.stamps_ns is None
    stream.push(_image(4, 8), 4)
    r = stream.push(_image(4, 8), 5)
    assert r.stamps_ns == (3, 4, 5) and all(im.shape == (4, 8, 3) for im in r.images)


# -- TrajectoryTracker ---------------------------------------------------------------------


def test_relative_covariance_is_ros_order_for_pure_translation():
    tracker = TrajectoryTracker(np.eye(4))
    T = np.stack([np.eye(4), make_transform(np.eye(3), np.array([1.0, 2.0, 3.0]))])
    var = np.array([0.01, 0.02, 0.03, 0.4, 0.5, 0.6])  # [rot, trans]
    out = tracker.process([0, 1], T, np.log(np.stack([var, var])), tracker.epoch)
    (m,) = out.relative
    np.testing.assert_allclose(np.diag(m.cov_ros), [0.4, 0.5, 0.6, 0.01, 0.02, 0.03], rtol=1e-12)
    assert m.anchor_stamp_ns == 0 and m.stamp_ns == 1


def test_relative_covariance_rotates_into_anchor_frame():
    tracker = TrajectoryTracker(np.eye(4))
    R = Rotation.from_euler("z", 90, degrees=True).as_matrix()
    T = np.stack([np.eye(4), make_transform(R, np.zeros(3))])
    var = np.array([1e-4, 2e-4, 3e-4, 1.0, 4.0, 9.0])
    (m,) = tracker.process([0, 1], T, np.log(np.stack([var, var])), 0).relative
    # a right perturbation along camera-i x is along anchor y after the 90° yaw
    np.testing.assert_allclose(np.diag(m.cov_ros)[:3], [4.0, 1.0, 9.0], rtol=1e-12)
    np.testing.assert_allclose(np.diag(m.cov_ros)[3:], [2e-4, 1e-4, 3e-4], rtol=1e-12)
    np.testing.assert_allclose(m.cov_ros, m.cov_ros.T)


def test_chained_trajectory_matches_truth_across_windows():
    T_world_cam = _true_cams(10)
    T_base_cam = make_transform(Rotation.from_quat([-0.5, 0.5, -0.5, 0.5]).as_matrix(), np.array([0.1, 0.0, 0.3]))
    tracker = TrajectoryTracker(T_base_cam)
    log_var = np.full((4, 6), np.log(1e-4))
    poses = {}
    for start in (0, 2, 4, 6):  # size 4, stride 2
        idx = list(range(start, start + 4))
        out = tracker.process(idx, _window_rel(T_world_cam, idx), log_var, tracker.epoch)
        assert not out.bridged
        for p in out.poses:
            assert p.stamp_ns not in poses, "each frame is published once"
            poses[p.stamp_ns] = p
    assert sorted(poses) == list(range(10))
    # truth: base at frame 0 is the odom origin
    T_odom_world = T_base_cam @ invert_transform(T_world_cam[0])
    for k, p in poses.items():
        expected = T_odom_world @ T_world_cam[k] @ invert_transform(T_base_cam)
        np.testing.assert_allclose(p.T_odom_base, expected, atol=1e-9)
        np.testing.assert_allclose(p.cov_ros, p.cov_ros.T, atol=1e-15)
    np.testing.assert_array_equal(poses[0].cov_ros, np.zeros((6, 6)))
    traces = [np.trace(poses[k].cov_ros) for k in range(10)]
    assert traces[3] < traces[5] < traces[9], "uncertainty grows along the chain"
    assert np.all(np.linalg.eigvalsh(poses[9].cov_ros) > 0)


def test_non_overlapping_window_is_bridged_and_counted():
    T_world_cam = _true_cams(8)
    tracker = TrajectoryTracker(np.eye(4))
    lv = np.zeros((3, 6))
    tracker.process([0, 1, 2], _window_rel(T_world_cam, [0, 1, 2]), lv, 0)
    out = tracker.process([4, 5, 6], _window_rel(T_world_cam, [4, 5, 6]), lv, 0)
    assert out.bridged and tracker.counters.trajectory_breaks == 1
    assert [p.stamp_ns for p in out.poses] == [5, 6]


def test_frames_without_an_estimate_are_left_out_counted_and_never_published():
    T_world_cam = _true_cams(6)
    tracker = TrajectoryTracker(np.eye(4))
    T = _window_rel(T_world_cam, [0, 1, 2, 3])
    T[2] = np.nan  # e.g. the geometric backbone found too few matches for frame 2
    out = tracker.process([0, 1, 2, 3], T, np.zeros((4, 6)), 0, valid=np.array([True, True, False, True]))
    assert [p.stamp_ns for p in out.poses] == [0, 1, 3] and tracker.counters.frames_invalid == 1
    assert all(np.isfinite(p.T_odom_base).all() for p in out.poses)
    with pytest.raises(NonFiniteOutputError, match="reference frame"):
        tracker.process([3, 4], _window_rel(T_world_cam, [3, 4]), np.zeros((2, 6)), 0, valid=np.array([False, True]))


def test_stale_window_after_reset_is_discarded():
    tracker = TrajectoryTracker(np.eye(4))
    epoch = tracker.epoch
    tracker.reset()
    assert tracker.process([0, 1], np.stack([np.eye(4)] * 2), np.zeros((2, 6)), epoch) is None
    assert tracker.counters.stale_windows == 1 and tracker.counters.resets == 1


def test_non_finite_output_is_refused():
    tracker = TrajectoryTracker(np.eye(4))
    lv = np.zeros((2, 6))
    lv[1, 4] = np.nan
    with pytest.raises(NonFiniteOutputError):
        tracker.process([0, 1], np.stack([np.eye(4)] * 2), lv, 0)


def test_metric_head_needs_metric_scale():
    with pytest.raises(ConfigError, match="metric"):
        TrajectoryTracker(np.eye(4), "none", "metric")


@pytest.mark.parametrize(("convention", "sigma_factor"), [("vggt", 2.5), ("metric", 1.0)])
def test_odometry_scale_fit(convention, sigma_factor):
    T_world_cam = _true_cams(6, seed=3)
    T_base_cam = make_transform(Rotation.from_quat([-0.5, 0.5, -0.5, 0.5]).as_matrix(), np.zeros(3))
    tracker = TrajectoryTracker(T_base_cam, "odometry", convention)
    # odometry (metres) at 10 Hz bracketing the image stamps (every 100 ms)
    for k in range(6):
        tracker.add_odometry(k * 100 * MS, T_world_cam[k] @ invert_transform(T_base_cam))
    idx = [0, 1, 2, 3, 4, 5]
    stamps = [k * 100 * MS for k in idx]
    rel = _window_rel(T_world_cam, idx)
    rel_vggt = rel.copy()
    rel_vggt[:, :3, 3] /= 2.5
    var = np.array([1e-4] * 3 + [1e-2] * 3)
    out = tracker.process(stamps, rel_vggt, np.log(np.tile(var, (6, 1))), tracker.epoch)
    assert out.scale_fitted and out.scale == pytest.approx(2.5, rel=1e-9)
    for m, expected in zip(out.relative, rel[1:]):
        np.testing.assert_allclose(m.T_0_i, expected, atol=1e-9)
        cov_ours_trans = np.linalg.eigvalsh(m.cov_ros[:3, :3])
        np.testing.assert_allclose(cov_ours_trans, 1e-2 * sigma_factor**2, rtol=1e-9)


def test_odometry_scale_falls_back_without_odometry():
    tracker = TrajectoryTracker(np.eye(4), "odometry")
    out = tracker.process([0, 1], np.stack([np.eye(4)] * 2), np.zeros((2, 6)), 0)
    assert not out.scale_fitted and out.scale == 1.0 and tracker.counters.scale_fallbacks == 1


def test_memory_of_known_poses_is_bounded():
    tracker = TrajectoryTracker(np.eye(4), max_known=16)
    T = np.stack([make_transform(np.eye(3), np.array([0.1 * i, 0, 0])) for i in range(4)])
    for start in range(0, 400, 2):
        tracker.process(list(range(start, start + 4)), T, np.zeros((4, 6)), 0)
    assert tracker.n_known == 16


def test_non_finite_odometry_is_rejected_and_cannot_poison_the_scale():
    tracker = TrajectoryTracker(np.eye(4), "odometry")
    bad = np.eye(4)
    bad[0, 3] = np.nan
    for k in range(6):
        T = make_transform(np.eye(3), np.array([0.1 * k, 0.0, 0.0]))
        tracker.add_odometry(k * 100 * MS, bad if k == 2 else T)
    assert tracker.counters.odometry_rejected == 1
    rel = np.stack([make_transform(np.eye(3), np.array([0.05 * k, 0.0, 0.0])) for k in range(4)])
    out = tracker.process([k * 100 * MS for k in (0, 1, 3, 4)], rel, np.zeros((4, 6)), tracker.epoch)
    assert out.scale_fitted and np.isfinite(out.scale)
    assert all(np.isfinite(p.T_odom_base).all() for p in out.poses)


def test_metric_head_windows_without_an_odometry_scale_are_not_published():
    tracker = TrajectoryTracker(np.eye(4), "odometry", "metric")
    out = tracker.process([0, 1], np.stack([np.eye(4)] * 2), np.zeros((2, 6)), tracker.epoch)
    assert out is None and tracker.counters.windows_without_scale == 1
