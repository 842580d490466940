"""Helpers of the node tests: run ``vggt_uncertainty_node`` as a process and drive it over DDS.

Discovery stays on this host (``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``); every test
module passes its own ``offset`` so concurrent modules and runs get distinct domain ids.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import Odometry
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from vggt_uncertainty_ros.ros.diagnostics import status_values

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_PARAMS = ROOT / "config" / "params.yaml"
NODE = "vggt_uncertainty_node"
RELIABLE = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=1000)


def domain_id(offset: int) -> int:
    """A domain id in [1, 100] derived from the pid and a per-module offset."""
    return 1 + (os.getpid() * 7 + offset) % 100


def ros_env(log_dir: Path, domain: int) -> dict[str, str]:
    """Environment of a node process (and of this test process): local discovery, own domain, logs in tmp."""
    env = dict(os.environ)
    env.update(
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        ROS_DOMAIN_ID=str(domain),
        ROS_LOG_DIR=str(log_dir),
        PYTHONUNBUFFERED="1",
    )
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    return env


def covariance_problem(values, what: str) -> str | None:
    """Why a 36-value ROS covariance is not symmetric positive definite, or None when it is."""
    cov = np.asarray(values, dtype=np.float64).reshape(6, 6)
    if not np.isfinite(cov).all():
        return f"{what}: non-finite covariance"
    if not np.allclose(cov, cov.T, rtol=0, atol=1e-12 * max(np.abs(cov).max(), 1e-300)):
        return f"{what}: asymmetric covariance"
    if np.linalg.eigvalsh(cov).min() <= 0:
        return f"{what}: covariance not positive definite (min eigenvalue {np.linalg.eigvalsh(cov).min():.3g})"
    return None


def message_covariance_problems(msg: Any, topic: str) -> list[str]:
    """Covariance problems of a PoseWithCovarianceStamped or an Odometry (pose and twist)."""
    if isinstance(msg, Odometry):
        found = [
            covariance_problem(msg.pose.covariance, f"{topic} pose"),
            covariance_problem(msg.twist.covariance, f"{topic} twist"),
        ]
    else:
        found = [covariance_problem(msg.pose.covariance, topic)]
    return [f for f in found if f]


def write_params(path: Path, **overrides: Any) -> Path:
    """The shipped ``config/params.yaml`` with ``overrides`` applied, written to ``path``."""
    doc = yaml.safe_load(SHIPPED_PARAMS.read_text())
    section = doc["/**"]["ros__parameters"]
    for key, value in overrides.items():
        if key.startswith("backbone."):
            section["backbone"][key.removeprefix("backbone.")] = value
        else:
            section[key] = value
    path.write_text(yaml.safe_dump(doc))
    return path


def start_node(
    params_file: Path, env: dict[str, str], log_path: Path, extra_args: tuple[str, ...] = ()
) -> subprocess.Popen:
    """``python -m vggt_uncertainty_ros.ros.node --ros-args --params-file <params_file> <extra_args>``."""
    log = log_path.open("wb")
    cmd = [sys.executable, "-m", "vggt_uncertainty_ros.ros.node", "--ros-args", "--params-file", str(params_file)]
    return subprocess.Popen(
        [*cmd, *extra_args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )


def stop_node(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout_s: float = 5.0) -> tuple[int | None, float]:
    """Send ``sig`` and wait; returns (exit code or None if still running, seconds waited)."""
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        code = proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None, time.monotonic() - t0
    return code, time.monotonic() - t0


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, bytes (``/proc/<pid>/status`` VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def textured_frames(n: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` RGB uint8 frames of one random texture seen through a sliding, slowly zooming crop."""
    rng = np.random.default_rng(seed)
    big = rng.integers(0, 256, (height * 2, width * 2, 3), dtype=np.uint8)
    big = ((big.astype(np.float32) + np.roll(big, 1, 0) + np.roll(big, 1, 1)) / 3).astype(np.uint8)
    return [np.ascontiguousarray(big[k * 2 : k * 2 + height, k * 3 : k * 3 + width]) for k in range(n)]


class Driver:
    """Test-side ROS node: publishes images, records the node's outputs (own context, background spin)."""

    def __init__(self, domain: int, prefix: str = f"/{NODE}", image_topic: str = "/image") -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("vggt_test_driver", context=self.context)
        self.lock = threading.Lock()
        self.relative: list[PoseWithCovarianceStamped] = []
        self.poses: list[PoseWithCovarianceStamped] = []
        self.odometry: list[Odometry] = []
        self.diagnostics: list[dict[str, str]] = []
        #: every covariance problem of every pose/odometry message received (checked on arrival)
        self.covariance_problems: list[str] = []
        self.image_pub = self.node.create_publisher(Image, image_topic, RELIABLE)
        self.node.create_subscription(
            PoseWithCovarianceStamped, f"{prefix}/relative_pose", self._keep(self.relative, "relative_pose"), RELIABLE
        )
        self.node.create_subscription(
            PoseWithCovarianceStamped, f"{prefix}/pose", self._keep(self.poses, "pose"), RELIABLE
        )
        self.node.create_subscription(Odometry, f"{prefix}/odometry", self._keep(self.odometry, "odometry"), RELIABLE)
        self.node.create_subscription(
            DiagnosticArray, "/diagnostics", lambda m: self._keep(self.diagnostics)(status_values(m)), RELIABLE
        )
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - shutdown race
                return

    def _keep(self, store: list, topic: str | None = None) -> Callable[[Any], None]:
        def keep(msg: Any) -> None:
            problems = message_covariance_problems(msg, topic) if topic else []
            with self.lock:
                store.append(msg)
                self.covariance_problems.extend(problems)

        return keep

    def message_count(self) -> int:
        """Pose, relative-pose and odometry messages received so far."""
        with self.lock:
            return len(self.poses) + len(self.relative) + len(self.odometry)

    def assert_covariances_spd(self) -> None:
        """Every pose/odometry message so far had symmetric positive-definite covariances."""
        with self.lock:
            assert not self.covariance_problems, self.covariance_problems[:10]

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Wait until ``predicate()`` holds; AssertionError naming ``what`` on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self.lock:
                if predicate():
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
            time.sleep(0.02)

    def wait_for_subscriber(self, timeout_s: float = 60.0) -> None:
        """Wait until the node's image subscription is matched (discovery done, model loaded)."""
        deadline = time.monotonic() + timeout_s
        while self.image_pub.get_subscription_count() == 0:
            if time.monotonic() > deadline:
                raise AssertionError("the node never subscribed to /image")
            time.sleep(0.05)

    def latest_diagnostics(self) -> dict[str, str]:
        with self.lock:
            return dict(self.diagnostics[-1]) if self.diagnostics else {}

    def wait_diag(self, predicate: Callable[[dict[str, str]], bool], timeout_s: float, what: str) -> dict[str, str]:
        """Wait for a /diagnostics status satisfying ``predicate``; return it."""
        self.wait_for(lambda: bool(self.diagnostics) and predicate(self.diagnostics[-1]), timeout_s, what)
        return self.latest_diagnostics()

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(2.0)
