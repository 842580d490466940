"""End-to-end tests of ``vggt_uncertainty_node`` running as a separate process (real rclpy).

One node process serves the tests that use the ``session`` fixture (tiny backbone on CPU, a
random head saved to a temporary checkpoint, window_size 4 / stride 2, ``~/relative_pose``
turned on, from a YAML params file); nothing stops it before the module ends. The driver
publishes synthetic sequences over reliable QoS and checks the outputs against the geometry
core and an in-process WindowEstimator with the same weights. Every pose and odometry message
the driver receives is checked for a symmetric positive-definite covariance. The shutdown test
starts its own node process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from node_process import Driver, domain_id, ros_env, rss_bytes, start_node, textured_frames, write_params

from vggt_uncertainty_ros.geometry import (
    diag_to_cov,
    invert_transform,
    make_transform,
    quat_to_rotmat,
    residual_cov_to_ros,
    so3_log,
)
from vggt_uncertainty_ros.head import HeadMetadata, UncertaintyHead, load_head, save_head
from vggt_uncertainty_ros.model import backbone_identity, load_backbone
from vggt_uncertainty_ros.online.estimator import WindowEstimator
from vggt_uncertainty_ros.online.measurements import format_anchor_frame_id, parse_anchor_frame_id
from vggt_uncertainty_ros.ros.conversions import rgb_to_image_msg, stamp_to_ns

CAMERA = "cam_test"
CAMERA_TO_BASE = [0.1, -0.05, 0.3, -0.5, 0.5, -0.5, 0.5]
SIZE, STRIDE = 4, 2
T0_NS = 1_700_000_000 * 1_000_000_000
DT_NS = 100_000_000
N_MAIN = 8
ENCODINGS = ("rgb8", "bgr8", "rgba8", "mono8")
ORIGIN_SIGMA_ROT, ORIGIN_SIGMA_TRANS = 0.002, 0.003


@dataclass
class Session:
    proc: subprocess.Popen
    driver: Driver
    log_path: Path
    estimator: WindowEstimator
    frames: list = field(default_factory=list)
    stamps: list = field(default_factory=list)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def _pose_matrix(msg) -> np.ndarray:
    p, o = msg.pose.pose.position, msg.pose.pose.orientation
    return make_transform(quat_to_rotmat(np.array([o.x, o.y, o.z, o.w])), np.array([p.x, p.y, p.z]))


def _cov(msg) -> np.ndarray:
    return np.asarray(msg.pose.covariance, dtype=np.float64).reshape(6, 6)


def _image_msg(frame: np.ndarray, stamp_ns: int, encoding: str):
    """Encode ``frame`` (RGB) as ``encoding``; bgr8 frames get 4 bytes of row padding."""
    stored = {
        "rgb8": frame,
        "bgr8": frame[..., ::-1],
        "rgba8": np.dstack([frame, np.full(frame.shape[:2], 255, np.uint8)]),
        "mono8": frame[..., 0],
    }[encoding]
    msg = rgb_to_image_msg(np.ascontiguousarray(stored), encoding, stamp_ns, CAMERA)
    if encoding == "bgr8":
        rows = [bytes(msg.data[r * msg.step : (r + 1) * msg.step]) + b"\0\0\0\0" for r in range(msg.height)]
        msg.step += 4
        msg.data = b"".join(rows)
    return msg


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ros_node")
    torch.manual_seed(0)
    backbone = load_backbone("tiny", torch.device("cpu"), torch.float32)
    head = UncertaintyHead(in_dim=backbone.feature_dim, hidden=32, final_init_std=0.5)
    head_path = tmp / "head.safetensors"
    save_head(head_path, head, HeadMetadata.for_head(head, backbone=backbone_identity(backbone)))
    params = write_params(
        tmp / "params.yaml",
        window_size=SIZE,
        window_stride=STRIDE,
        **{"backbone.weights": "tiny"},
        head_checkpoint=str(head_path),
        **{"backbone.device": "cpu"},
        camera_frame=CAMERA,
        base_frame="base_test",
        odom_frame="odom_test",
        camera_to_base=CAMERA_TO_BASE,
        image_qos="reliable",
        queue_depth=2,
        diagnostics_period_s=0.25,
        publish_relative_pose=True,
        origin_sigma_rot_rad=ORIGIN_SIGMA_ROT,
        origin_sigma_trans=ORIGIN_SIGMA_TRANS,
    )
    domain = domain_id(offset=11)
    env = ros_env(tmp / "ros_log", domain)
    os.environ.update({k: env[k] for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOG_DIR")})
    log_path = tmp / "node.log"
    proc = start_node(params, env, log_path)
    driver = Driver(domain)
    loaded_head, meta = load_head(head_path)
    estimator = WindowEstimator(backbone, loaded_head, "cpu", None, "crop", head_metadata=meta)
    s = Session(proc, driver, log_path, estimator)
    try:
        driver.wait_for_subscriber(90.0)
    except AssertionError as err:
        proc.kill()
        driver.close()
        raise AssertionError(f"{err}\nnode log:\n{s.log()}") from None
    yield s
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    driver.close()
    driver.assert_covariances_spd()


@pytest.fixture(scope="module")
def main_run(session):
    """Publish the main 8-frame sequence (mixed encodings) and wait for all outputs."""
    frames = textured_frames(N_MAIN, 48, 64, seed=1)
    for k, frame in enumerate(frames):
        if ENCODINGS[k % 4] == "mono8":
            frames[k] = frame = np.repeat(frame[..., :1], 3, axis=2)
        stamp = T0_NS + k * DT_NS
        session.driver.image_pub.publish(_image_msg(frame, stamp, ENCODINGS[k % 4]))
        session.frames.append(frame)
        session.stamps.append(stamp)
        time.sleep(0.1)
    n_windows = (N_MAIN - SIZE) // STRIDE + 1
    d = session.driver
    try:
        d.wait_for(
            lambda: (
                len(d.relative) >= n_windows * (SIZE - 1) and len(d.poses) >= N_MAIN and len(d.odometry) >= N_MAIN - 1
            ),
            120.0,
            "outputs",
        )
    except AssertionError as err:
        raise AssertionError(f"{err}\nnode log:\n{session.log()}") from None
    # the node reports what it has published: nothing more is on its way
    d.wait_diag(lambda v: int(v["windows_processed"]) >= n_windows and int(v["queue_depth"]) == 0, 30.0, "idle")
    with d.lock:
        return list(d.relative), list(d.poses), n_windows


def test_one_relative_pose_per_non_anchor_frame_with_stamps_and_anchor_ids(session, main_run):
    relative, _, n_windows = main_run
    assert len(relative) == n_windows * (SIZE - 1)
    for w in range(n_windows):
        anchor = session.stamps[w * STRIDE]
        msgs = relative[w * (SIZE - 1) : (w + 1) * (SIZE - 1)]
        assert [m.header.frame_id for m in msgs] == [format_anchor_frame_id(CAMERA, anchor)] * (SIZE - 1)
        assert [stamp_to_ns(m.header.stamp) for m in msgs] == session.stamps[w * STRIDE + 1 : w * STRIDE + SIZE]
        assert parse_anchor_frame_id(msgs[0].header.frame_id) == (CAMERA, anchor)


def test_relative_covariances_match_the_head_in_ros_convention(session, main_run):
    relative, _, n_windows = main_run
    for w in range(n_windows):
        images = session.frames[w * STRIDE : w * STRIDE + SIZE]
        est = session.estimator.estimate(images)
        expected_cov = residual_cov_to_ros(est.T_0_i, diag_to_cov(np.exp(est.log_var)))
        for i, msg in enumerate(relative[w * (SIZE - 1) : (w + 1) * (SIZE - 1)], start=1):
            cov = _cov(msg)
            np.testing.assert_allclose(cov, cov.T, rtol=0, atol=1e-12 * np.abs(cov).max())
            assert np.linalg.eigvalsh(cov).min() > 0, "covariance must be positive definite"
            np.testing.assert_allclose(cov, expected_cov[i], rtol=1e-4, atol=1e-6 * np.abs(expected_cov[i]).max())
            np.testing.assert_allclose(_pose_matrix(msg), est.T_0_i[i], rtol=1e-4, atol=1e-5)


def test_pose_chains_windows_continuously(session, main_run):
    relative, poses, _ = main_run
    assert [stamp_to_ns(p.header.stamp) for p in poses] == session.stamps, "every frame once, in order"
    assert {p.header.frame_id for p in poses} == {"odom_test"}
    np.testing.assert_allclose(_pose_matrix(poses[0]), np.eye(4), atol=1e-12)
    T_base_cam = make_transform(quat_to_rotmat(np.array(CAMERA_TO_BASE[3:])), np.array(CAMERA_TO_BASE[:3]))
    by_stamp = {stamp_to_ns(p.header.stamp): p for p in poses}
    index = {stamp: k for k, stamp in enumerate(session.stamps)}
    for m in relative:
        anchor = parse_anchor_frame_id(m.header.frame_id)[1]
        stamp = stamp_to_ns(m.header.stamp)
        if index[anchor] > 0 and index[stamp] - index[anchor] < SIZE - STRIDE:
            continue  # overlap frame: its pose came from the previous window
        expected = _pose_matrix(by_stamp[anchor]) @ T_base_cam @ _pose_matrix(m) @ invert_transform(T_base_cam)
        np.testing.assert_allclose(_pose_matrix(by_stamp[stamp]), expected, atol=1e-6)
        grown = _cov(by_stamp[stamp]) - _cov(by_stamp[anchor])
        assert np.linalg.eigvalsh(grown).min() > -1e-12, "uncertainty only grows along the chain"


def test_bad_inputs_are_counted_and_the_node_recovers(session, main_run):
    d = session.driver
    before = d.wait_diag(lambda v: "images_received" in v, 10.0, "diagnostics")
    n_before = int(before["images_received"])
    last = session.stamps[-1]
    frame = textured_frames(1, 48, 64, seed=5)[0]
    bad_encoding = _image_msg(frame, last + DT_NS, "rgb8")
    bad_encoding.encoding = "yuv422"
    short = _image_msg(frame, last + DT_NS, "rgb8")
    short.data = bytes(short.data)[:-10]
    big = textured_frames(SIZE + 2, 96, 128, seed=6)
    back = T0_NS - 50 * DT_NS
    sequence = [
        bad_encoding,
        short,
        _image_msg(frame, last, "rgb8"),  # duplicate of the last accepted stamp
        _image_msg(frame, last - DT_NS // 2, "rgb8"),  # one late frame: dropped, no reset
        *[_image_msg(im, last + (k + 1) * DT_NS, "rgb8") for k, im in enumerate(big[:SIZE])],  # size change
        # a loop: stamps persistently go backwards; the third such frame resets the state
        *[_image_msg(im, back + (k + 1) * DT_NS, "rgb8") for k, im in enumerate(big)],
    ]
    for msg in sequence:
        d.image_pub.publish(msg)
        time.sleep(0.05)

    def counted(v):
        return int(v.get("images_received", 0)) - n_before == len(sequence) and int(v.get("windows_processed", 0)) >= 4

    v = d.wait_diag(counted, 60.0, "bad inputs counted")
    assert int(v["images_rejected/unsupported_encoding"]) == 1
    assert int(v["images_rejected/size_mismatch"]) == 1
    assert int(v["images_dropped/duplicate_stamp"]) == 1
    assert int(v["images_dropped/out_of_order"]) == 1 + 2  # the late frame, the loop's first two
    assert int(v["events/stamp_backwards"]) == 1 and int(v["resets"]) == 1
    assert int(v["events/size_changed"]) == 1
    assert session.proc.poll() is None, f"node died:\n{session.log()}"
    # the window after the reset is anchored at the loop's third frame, on a fresh trajectory
    back += 2 * DT_NS
    anchor_id = format_anchor_frame_id(CAMERA, back + DT_NS)
    d.wait_for(lambda: sum(m.header.frame_id == anchor_id for m in d.relative) == SIZE - 1, 30.0, "new window")
    # ~/pose is another topic: its messages of the same window may arrive a little later
    d.wait_for(lambda: any(stamp_to_ns(p.header.stamp) == back + DT_NS for p in d.poses), 30.0, "the new origin")
    with d.lock:
        fresh = [p for p in d.poses if stamp_to_ns(p.header.stamp) == back + DT_NS]
    assert len(fresh) == 1
    np.testing.assert_allclose(_pose_matrix(fresh[0]), np.eye(4), atol=1e-12)


def test_origin_pose_carries_the_configured_floor_and_odometry_the_twist(session, main_run):
    relative, poses, _ = main_run
    floor = np.diag([ORIGIN_SIGMA_TRANS**2] * 3 + [ORIGIN_SIGMA_ROT**2] * 3)
    np.testing.assert_allclose(_cov(poses[0]), floor, rtol=1e-9, atol=1e-15)
    d = session.driver
    with d.lock:
        odometry = list(d.odometry[: N_MAIN - 1])  # the main run's (later tests add more)
    # one per frame but the origin (no previous keyframe), in order, with the same pose as ~/pose
    assert [stamp_to_ns(o.header.stamp) for o in odometry] == session.stamps[1:]
    assert {(o.header.frame_id, o.child_frame_id) for o in odometry} == {("odom_test", "base_test")}
    for o, p in zip(odometry, poses[1:], strict=True):
        np.testing.assert_allclose(_pose_matrix(o), _pose_matrix(p), atol=1e-12)
        np.testing.assert_allclose(_cov(o), _cov(p), rtol=1e-12)
    # in the first window every pose comes from the same estimate: the twist is their difference
    for k in range(1, SIZE):
        T_ab = invert_transform(_pose_matrix(poses[k - 1])) @ _pose_matrix(poses[k])
        dt = (session.stamps[k] - session.stamps[k - 1]) * 1e-9
        tw = odometry[k - 1].twist.twist
        np.testing.assert_allclose([tw.angular.x, tw.angular.y, tw.angular.z], so3_log(T_ab[:3, :3]) / dt, atol=1e-6)
        v = T_ab[:3, :3].T @ T_ab[:3, 3] / dt
        np.testing.assert_allclose([tw.linear.x, tw.linear.y, tw.linear.z], v, atol=1e-6)


def test_over_rate_stream_drops_by_policy_with_flat_memory(session, main_run):
    d = session.driver

    def idle(v):  # nothing queued and nothing in flight: every submitted window accounted for
        accounted = int(v["windows_processed"]) + int(v["windows_failed"]) + int(v["windows_dropped"])
        return int(v["queue_depth"]) == 0 and accounted == int(v["windows_submitted"])

    v0 = d.wait_diag(idle, 30.0, "an idle node")
    n_frames = 48
    frames = textured_frames(8, 240, 320, seed=7)
    start = T0_NS + 3600 * 1_000_000_000
    rss = []
    # a window every 2 x 50 ms, a few times faster than CPU inference (> 150 ms); 50 ms apart,
    # the node's 10-deep reliable image queue never overflows, so every image is received
    for k in range(n_frames):
        d.image_pub.publish(_image_msg(frames[k % 8], start + k * DT_NS, "rgb8"))
        rss.append(rss_bytes(session.proc.pid))
        time.sleep(0.05)

    def delta(v, key):
        return int(v[key]) - int(v0[key])

    def settled(v):  # every image received, every window accounted for: processed, failed or dropped
        done = delta(v, "windows_processed") + delta(v, "windows_failed") + delta(v, "windows_dropped")
        received = delta(v, "images_received") == n_frames
        return received and delta(v, "windows_submitted") == (n_frames - SIZE) // STRIDE + 1 == done

    try:
        v = d.wait_diag(settled, 60.0, "every window processed or dropped")
    except AssertionError as err:
        raise AssertionError(f"{err}: {d.latest_diagnostics()} (before: {v0})") from None
    assert delta(v, "windows_dropped") >= 1 and delta(v, "windows_failed") == 0
    with d.lock:
        depths = [int(s["queue_depth"]) for s in d.diagnostics]
    assert max(depths) <= 2, "the queue never exceeds queue_depth"
    third = len(rss) // 3
    growth_mb = (max(rss[-third:]) - max(rss[:third])) / 2**20
    assert growth_mb < 16.0, f"RSS grew by {growth_mb:.1f} MiB over an over-rate stream"
    assert session.proc.poll() is None


def test_images_lost_in_transport_are_counted_by_the_node(session, main_run):
    """A burst far faster than the node's callbacks overflows its reliable depth-10 image queue.

    DDS evicts the oldest waiting images; the node never sees them, only the gaps in the
    publisher's sequence numbers. Every image published is then either received or counted
    lost (the newest image of the burst is always kept, so no loss goes unrevealed).
    """
    d = session.driver

    def idle(v):
        accounted = int(v["windows_processed"]) + int(v["windows_failed"]) + int(v["windows_dropped"])
        return int(v["queue_depth"]) == 0 and accounted == int(v["windows_submitted"])

    v0 = d.wait_diag(idle, 60.0, "an idle node")  # main_run's images set this publisher's baseline
    n_burst = 150
    frames = textured_frames(4, 480, 640, seed=11)
    start = T0_NS + 7200 * 1_000_000_000
    for k in range(n_burst):  # back to back: 0.9 MiB each, decoded and resized by the node one by one
        d.image_pub.publish(_image_msg(frames[k % 4], start + k * DT_NS, "rgb8"))

    def delta(v, key):
        return int(v[key]) - int(v0[key])

    try:
        v = d.wait_diag(
            lambda v: delta(v, "images_received") + delta(v, "images_lost") == n_burst and idle(v),
            120.0,
            "every burst image received or counted lost",
        )
    except AssertionError as err:
        raise AssertionError(f"{err}: {d.latest_diagnostics()} (before: {v0})\n{session.log()}") from None
    lost = delta(v, "images_lost")
    assert lost > 0, "the burst must outrun the node's 10-deep image queue, or this test shows nothing"
    assert delta(v, "images_received") == n_burst - lost
    assert delta(v, "images_unsequenced") == 0
    assert "lost in transport" in session.log()


@pytest.mark.slow
def test_repeated_sigint_and_sigterm_while_busy_exit_zero_within_5_s(tmp_path):
    """Its own node process: SIGINT, SIGINT, SIGTERM while images keep arriving."""
    domain = domain_id(offset=13)
    env = ros_env(tmp_path / "ros_log", domain)
    params = write_params(
        tmp_path / "params.yaml",
        **{"backbone.device": "cpu"},
        window_size=2,
        window_stride=1,
        image_qos="reliable",
        diagnostics_period_s=0.2,
    )
    log_path = tmp_path / "node.log"
    proc = start_node(params, env, log_path)
    driver = Driver(domain)
    frames = textured_frames(4, 240, 320, seed=9)
    stop = threading.Event()

    def stream():
        k = 0
        while not stop.is_set():
            driver.image_pub.publish(_image_msg(frames[k % 4], T0_NS + k * DT_NS, "rgb8"))
            k += 1
            stop.wait(0.02)

    feeder = threading.Thread(target=stream, daemon=True)
    try:
        driver.wait_for_subscriber(90.0)
        feeder.start()
        driver.wait_diag(lambda v: int(v.get("windows_processed", 0)) >= 2, 60.0, "windows inferred")
        t0 = time.monotonic()
        for sig in (signal.SIGINT, signal.SIGINT, signal.SIGTERM):
            proc.send_signal(sig)
        code = proc.wait(10.0)
        waited = time.monotonic() - t0
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        driver.close()
    log = log_path.read_text(errors="replace")
    assert code == 0 and waited < 5.0, f"exit {code} after {waited:.1f} s\n{log[-3000:]}"
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log[-3000:]
    driver.assert_covariances_spd()
