"""End to end: the real node's recorded ``~/relative_pose`` judged by ``--poses-topic``.

A short synthetic ROS 2 bag is replayed over DDS (loopback only, own domain id) into
``vggt_uncertainty_node`` (tiny backbone, constant σ, CPU); its relative-pose output is received
as raw CDR and written into a ROS 2 bag (as ``ros2 bag record`` would), then evaluated. The same frames
evaluated with ``--run-model`` (same window rule, same backbone, same constant σ) must give the same windows,
residuals and d²: the node's frame-id convention, ROS covariance and windowing round-trip exactly through the evaluator.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from vggt_uncertainty_ros.evaluate import EvalConfig, evaluate
from vggt_uncertainty_ros.evaluate.config import DEFAULT_PARAMS_YAML

pytestmark = pytest.mark.ros

TOPIC = "/vggt_uncertainty_node/relative_pose"
N_FRAMES = 12  # two windows of 8 with stride 4


def _params(path: Path) -> Path:
    doc = yaml.safe_load(DEFAULT_PARAMS_YAML.read_text())
    section = doc["/**"]["ros__parameters"]
    section.update(image_qos="reliable", queue_depth=8, publish_relative_pose=True)  # opt-in output
    section["backbone"]["device"] = "cpu"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_recorded_node_output_matches_the_offline_model_run(tmp_path: Path, monkeypatch) -> None:
    rclpy = pytest.importorskip("rclpy")  # the ROS extra of setup.py; installed in .venv and CI
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    from vggt_uncertainty_ros.data.synth import generate
    from vggt_uncertainty_ros.ros.replay import replay_and_record

    seq = generate(tmp_path / "synth", seed=21, n_frames=N_FRAMES, formats=("tum", "ros2"), width=96, height=72)
    params = _params(tmp_path / "params.yaml")
    env = {
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_DOMAIN_ID": str(1 + (os.getpid() * 7 + 53) % 100),
        "ROS_LOG_DIR": str(tmp_path / "ros_log"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    log = (tmp_path / "node.log").open("wb")
    node = subprocess.Popen(
        [sys.executable, "-m", "vggt_uncertainty_ros.ros.node", "--ros-args", "--params-file", str(params)],
        env=dict(os.environ),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    expected = 2 * 7
    received: list[tuple[int, bytes]] = []
    rclpy.init()
    recorder = rclpy.create_node("eval_test_recorder")
    qos = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_ALL, depth=1000)
    recorder.create_subscription(
        PoseWithCovarianceStamped, TOPIC, lambda raw: received.append((time.time_ns(), bytes(raw))), qos, raw=True
    )
    executor = SingleThreadedExecutor()
    executor.add_node(recorder)
    done = threading.Event()

    def spin() -> None:
        while not done.is_set():
            executor.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    try:
        replay_and_record(
            seq.paths["ros2"],
            "/camera/rgb/image_color",
            publish_topic="/image",
            rate=0.5,
            wait_for_subscribers_s=60.0,
            settle_s=0.0,
        )
        deadline = time.monotonic() + 90.0
        while len(received) < expected and time.monotonic() < deadline and node.poll() is None:
            time.sleep(0.1)
    finally:
        done.set()
        spinner.join(5.0)
        recorder.destroy_node()
        rclpy.try_shutdown()
        node.send_signal(signal.SIGINT)
        try:
            node.wait(10)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()
        log.close()
    assert len(received) == expected, (tmp_path / "node.log").read_text()[-3000:]
    with Writer(tmp_path / "recorded", version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
        conn = writer.add_connection(
            TOPIC, "geometry_msgs/msg/PoseWithCovarianceStamped", typestore=get_typestore(Stores.ROS2_HUMBLE)
        )
        for t, data in received:
            writer.write(conn, t, data)

    gt = seq.paths["tum"] / "groundtruth.txt"
    recorded = evaluate(
        EvalConfig(
            data=tmp_path / "recorded",
            out_dir=tmp_path / "rec",
            source="poses-topic",
            poses_topic=TOPIC,
            gt=gt,
            plots=False,
        )
    )
    offline = evaluate(EvalConfig(data=seq.paths["ros2"], out_dir=tmp_path / "off", params=params, gt=gt, plots=False))
    # a short recording: at most its ATE is flagged (too few poses) and the pose graph's
    # translation gaps (windows without a trustworthy scale), and the same in both
    assert set(recorded.report["warnings"]) <= {"ate_few_poses", "pgo_translation_gaps"}
    assert recorded.report["warnings"] == offline.report["warnings"]
    a, b = recorded.table, offline.table
    np.testing.assert_array_equal(a.stamp_ns, b.stamp_ns)
    np.testing.assert_array_equal(a.anchor_stamp_ns, b.anchor_stamp_ns)
    np.testing.assert_array_equal(a.index_in_window, b.index_in_window)
    np.testing.assert_allclose(a.residual, b.residual, atol=1e-5)
    np.testing.assert_allclose(a.sigma, b.sigma, rtol=1e-5)
    np.testing.assert_allclose(a.d2_rot, b.d2_rot, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(a.d2_trans, b.d2_trans, rtol=1e-3, atol=1e-6)
