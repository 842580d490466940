"""Soak benchmark: the real node over DDS, fed faster than it can infer, for a long time.

``python -m benchmarks.soak [--images 10000] [--over-rate 4] [--width 640 --height 480]
[--window 8 --stride 4] [--device cpu] [--weights tiny] [--image-queue-depth 10] [--domain 31]
[--json out.json]``

Starts ``vggt_uncertainty_node`` as a process (the shipped ``config/params.yaml`` with the
options above, reliable image QoS), measures its inference rate on a short warm-up, then
publishes ``--images`` textured frames at ``over-rate`` times the frame rate it can process
(``over_rate * stride`` frames per window latency), each stamped with the wall clock when it
is published. It prints:

* **RSS slope**: least-squares slope of the node's resident set (sampled every 10 images)
  against images published, MiB per 1,000 images, over the second half of the run (after
  allocator warm-up); and the slope of its **floor** (the lowest sample of each of 20 equal
  blocks of that half). Single samples swing by tens of MiB with the window in flight (its
  temporaries are mmapped and returned after it), which a leak does not do; a leak raises the
  floor as much as the samples;
* **stamp-to-pose latency**: for each ``~/pose`` message, receive time minus its image
  stamp (same host clock): p50 / p95 / max;
* **drops**: images lost between publisher and node (DDS), as the publisher sees them
  (published - received) and as the node counts them (``images_lost``, from gaps in the
  publisher's sequence numbers), images the node dropped or rejected, windows dropped by the
  latest-wins queue, frames left out of re-anchored windows; and whether every drop is
  accounted for (``images published = received + lost`` by the node's own counters, and
  ``windows_submitted = processed + dropped + failed``);
* **gaps** (trajectory gaps bridged by the motion model, i.e. unbridged by re-anchoring) and
  **resets**.

Targets (issue 14): RSS slope < 1 MiB per 1,000 images over >= 10,000 images at 4x
over-rate, zero gaps, zero resets, every drop counted. ``test/benchmarks/test_soak.py`` runs a
short form. The exit status is 0 when the run completed (targets are reported, not enforced:
a short run's RSS slope is dominated by warm-up).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_PARAMS = ROOT / "config" / "params.yaml"
NODE = "vggt_uncertainty_node"
MIB = 1024 * 1024


@dataclass(frozen=True)
class SoakConfig:
    """What to run: image count and size, over-rate, windowing, model, DDS domain."""

    images: int = 10_000
    over_rate: float = 4.0
    width: int = 640
    height: int = 480
    window: int = 8
    stride: int = 4
    device: str = "cpu"
    weights: str = "tiny"
    domain: int = 31
    queue_depth: int = 2
    image_queue_depth: int = 10
    warmup_windows: int = 4
    startup_timeout_s: float = 180.0


@dataclass
class SoakResult:
    """Figures of one run (latencies in seconds, RSS in MiB)."""

    images_published: int
    publish_rate_hz: float
    window_latency_s: float
    rss_start_mib: float
    rss_end_mib: float
    rss_slope_mib_per_1000: float
    rss_floor_slope_mib_per_1000: float
    latency_p50_s: float
    latency_p95_s: float
    latency_max_s: float
    poses: int
    dds_lost: int
    node_lost: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    accounted: bool = False

    @property
    def gaps(self) -> int:
        return self.counters.get("trajectory_gaps", 0)

    @property
    def resets(self) -> int:
        return self.counters.get("resets", 0)

    def lines(self) -> list[str]:
        c = self.counters
        return [
            f"images published     {self.images_published} at {self.publish_rate_hz:.1f} Hz "
            f"(window latency {self.window_latency_s * 1e3:.0f} ms)",
            f"RSS                  {self.rss_start_mib:.1f} -> {self.rss_end_mib:.1f} MiB, "
            f"slope {self.rss_slope_mib_per_1000:+.3f} MiB per 1,000 images (floor "
            f"{self.rss_floor_slope_mib_per_1000:+.3f})",
            f"stamp-to-pose        p50 {self.latency_p50_s * 1e3:.0f} ms   p95 {self.latency_p95_s * 1e3:.0f} ms   "
            f"max {self.latency_max_s * 1e3:.0f} ms   ({self.poses} poses)",
            f"drops                dds_lost {self.dds_lost} (node counted {self.node_lost}), "
            f"images_dropped {c.get('images_dropped', 0)}, "
            f"images_rejected {c.get('images_rejected', 0)}, windows_dropped {c.get('windows_dropped', 0)}, "
            f"frames_skipped {c.get('frames_skipped', 0)}, windows_failed {c.get('windows_failed', 0)}; "
            f"accounted: {'yes' if self.accounted else 'NO'}",
            f"windows              submitted {c.get('windows_submitted', 0)}, processed "
            f"{c.get('windows_processed', 0)}, re-anchored {c.get('windows_rebased', 0)}",
            f"gaps                 {self.gaps}",
            f"resets               {self.resets}",
        ]


def rss_mib(pid: int) -> float:
    """Resident set size of a process, MiB (``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def rss_slope_per_1000(images: list[int], rss: list[float]) -> float:
    """Least-squares slope of RSS (MiB) against images, x 1000, over the second half of the samples."""
    if len(images) < 4:
        return float("nan")
    half = len(images) // 2
    x, y = np.asarray(images[half:], dtype=np.float64), np.asarray(rss[half:], dtype=np.float64)
    if np.ptp(x) == 0:
        return float("nan")
    return float(np.polyfit(x, y, 1)[0] * 1000)


def rss_floor_slope_per_1000(images: list[int], rss: list[float], blocks: int = 20) -> float:
    """Slope (MiB per 1,000 images) of the lowest RSS sample of each of ``blocks`` equal blocks of the second half."""
    half = len(images) // 2
    x, y = np.asarray(images[half:], dtype=np.float64), np.asarray(rss[half:], dtype=np.float64)
    if len(x) < 2 * blocks:
        return float("nan")
    lows = [(xb[np.argmin(yb)], yb.min()) for xb, yb in zip(np.array_split(x, blocks), np.array_split(y, blocks))]
    lx, ly = np.asarray(lows).T
    return float(np.polyfit(lx, ly, 1)[0] * 1000)


def textured_frames(n: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` RGB frames: one random texture seen through a sliding crop (apparent motion)."""
    rng = np.random.default_rng(seed)
    big = rng.integers(0, 256, (height + 2 * n, width + 3 * n, 3), dtype=np.uint8)
    return [np.ascontiguousarray(big[2 * k : 2 * k + height, 3 * k : 3 * k + width]) for k in range(n)]


def _write_params(path: Path, cfg: SoakConfig) -> Path:
    doc = yaml.safe_load(SHIPPED_PARAMS.read_text())
    section = doc["/**"]["ros__parameters"]
    section.update(
        window_size=cfg.window,
        window_stride=cfg.stride,
        image_qos="reliable",
        image_queue_depth=cfg.image_queue_depth,
        queue_depth=cfg.queue_depth,
        diagnostics_period_s=0.5,
    )
    section["backbone"].update(weights=cfg.weights, device=cfg.device)
    path.write_text(yaml.safe_dump(doc))
    return path


class _Driver:
    """Publisher of images and recorder of poses and diagnostics (own rclpy context)."""

    def __init__(self, domain: int) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseWithCovarianceStamped
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from vggt_uncertainty_ros.ros.conversions import stamp_to_ns
        from vggt_uncertainty_ros.ros.diagnostics import status_values

        self._rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("vggt_soak_driver", context=self.context)
        qos = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=1000)
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.last_pose_stamp_ns = 0
        self.diagnostics: dict[str, str] = {}
        self.diagnostics_received = 0
        self.image_pub = self.node.create_publisher(Image, "/image", qos)

        def on_pose(msg) -> None:
            now = time.time_ns()
            stamp = stamp_to_ns(msg.header.stamp)
            with self.lock:
                self.latencies.append((now - stamp) * 1e-9)
                self.last_pose_stamp_ns = max(self.last_pose_stamp_ns, stamp)

        def on_diag(msg) -> None:
            values = status_values(msg)
            if values:
                with self.lock:
                    self.diagnostics = values
                    self.diagnostics_received += 1

        self.node.create_subscription(PoseWithCovarianceStamped, f"/{NODE}/pose", on_pose, qos)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, qos)
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

    def diag(self) -> dict[str, str]:
        with self.lock:
            return dict(self.diagnostics)

    def wait(self, predicate, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"soak: timed out after {timeout_s:.0f} s waiting for {what}")
            time.sleep(0.05)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self._rclpy.try_shutdown(context=self.context)
        self._thread.join(2.0)


def _int(values: dict[str, str], key: str) -> int:
    try:
        return int(float(values.get(key, "0")))
    except ValueError:
        return 0


def run_soak(cfg: SoakConfig, *, log=print) -> SoakResult:
    """Run the soak described by ``cfg`` and return its figures (see the module docstring)."""
    from vggt_uncertainty_ros.ros.conversions import rgb_to_image_msg

    tmp = Path(tempfile.mkdtemp(prefix="vggt_soak_"))
    params = _write_params(tmp / "params.yaml", cfg)
    env = dict(os.environ)
    env.update(
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        ROS_DOMAIN_ID=str(cfg.domain),
        ROS_LOG_DIR=str(tmp / "ros_log"),
        PYTHONUNBUFFERED="1",
    )
    os.environ.update({k: env[k] for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOG_DIR")})
    log_file = (tmp / "node.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vggt_uncertainty_ros.ros.node", "--ros-args", "--params-file", str(params)],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    driver = _Driver(cfg.domain)
    frames = textured_frames(16, cfg.height, cfg.width)
    sent = 0

    def publish(k: int) -> int:
        stamp = time.time_ns()
        driver.image_pub.publish(rgb_to_image_msg(frames[k % len(frames)], "rgb8", stamp, "camera_optical"))
        return stamp

    try:
        driver.wait(
            lambda: driver.image_pub.get_subscription_count() > 0 or proc.poll() is not None,
            cfg.startup_timeout_s,
            "the node's image subscription",
        )
        if proc.poll() is not None:
            raise RuntimeError(f"the node exited ({proc.returncode}); log in {tmp / 'node.log'}")
        # warm-up: one window at a time, to measure what the node can process
        n_warm = cfg.window + cfg.stride * (cfg.warmup_windows - 1)
        for k in range(n_warm):
            stamp = publish(k)
            sent += 1
            if k >= cfg.window - 1 and (k - cfg.window + 1) % cfg.stride == 0:
                driver.wait(lambda s=stamp: driver.last_pose_stamp_ns >= s, cfg.startup_timeout_s, "a warm-up window")
        driver.wait(lambda: driver.diag().get("inference_latency_mean_s", "nan") != "nan", 30.0, "latency")
        latency_s = float(driver.diag()["inference_latency_mean_s"])
        interval_s = latency_s / (cfg.over_rate * cfg.stride)
        log(
            f"window latency {latency_s * 1e3:.0f} ms: publishing {cfg.images} images at {1 / interval_s:.1f} Hz "
            f"({cfg.over_rate:g}x over-rate)"
        )
        with driver.lock:
            driver.latencies.clear()
        driver.wait(lambda: _settled(driver.diag(), n_warm), 60.0, "warm-up counters")
        base = _counters(driver.diag())
        images, rss = [], []
        t_start = time.monotonic()
        for k in range(cfg.images):
            target = t_start + k * interval_s
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the publisher (a benchmark, not a test)
            publish(n_warm + k)
            sent += 1
            if k % 10 == 0:
                images.append(k)
                rss.append(rss_mib(proc.pid))
            if k % 1000 == 0 and k:
                log(f"  {k} images, RSS {rss[-1]:.1f} MiB")
        rate_hz = cfg.images / max(time.monotonic() - t_start, 1e-9)
        images.append(cfg.images)
        rss.append(rss_mib(proc.pid))
        # drained: every image received or counted lost, the queue empty, every window
        # settled; or nothing changing for 5 s with an empty queue (then not accounted)
        _drain(driver, sent, quiet_s=5.0, timeout_s=300.0)
        final = _counters(driver.diag())
        if proc.poll() is not None:
            raise RuntimeError(f"the node died during the soak; log in {tmp / 'node.log'}")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log_file.close()
        driver.close()
    counters = {k: final.get(k, 0) - base.get(k, 0) for k in final}
    counters["resets"] = final.get("resets", 0)
    lat = np.asarray(driver.latencies or [float("nan")])
    submitted = counters.get("windows_submitted", 0)
    settled = sum(counters.get(k, 0) for k in ("windows_processed", "windows_dropped", "windows_failed"))
    node_lost = final.get("images_lost", 0)
    accounted = final.get("images_received", 0) + node_lost == sent and submitted == settled
    return SoakResult(
        images_published=cfg.images,
        publish_rate_hz=rate_hz,
        window_latency_s=latency_s,
        rss_start_mib=rss[0],
        rss_end_mib=rss[-1],
        rss_slope_mib_per_1000=rss_slope_per_1000(images, rss),
        rss_floor_slope_mib_per_1000=rss_floor_slope_per_1000(images, rss),
        latency_p50_s=float(np.percentile(lat, 50)),
        latency_p95_s=float(np.percentile(lat, 95)),
        latency_max_s=float(np.max(lat)),
        poses=len(driver.latencies),
        dds_lost=sent - final.get("images_received", 0),
        node_lost=node_lost,
        counters=counters,
        accounted=accounted,
    )


_COUNTER_KEYS = (
    "images_received",
    "images_lost",
    "images_dropped",
    "images_rejected",
    "windows_submitted",
    "windows_processed",
    "windows_dropped",
    "windows_failed",
    "windows_stale",
    "windows_rebased",
    "frames_skipped",
    "trajectory_gaps",
    "resets",
)


#: fresh /diagnostics reports without a change before a draining node counts as quiet
QUIET_REPORTS = 10


def _drain(driver: _Driver, n_images: int, *, quiet_s: float, timeout_s: float) -> None:
    """Wait until the node settled (see :func:`_settled`) or went quiet with an empty queue.

    Quiet means: counters unchanged for ``quiet_s`` over at least :data:`QUIET_REPORTS` fresh
    ``/diagnostics`` reports (a node too busy to report, or a driver too busy to hear it, is
    not quiet: its last images may still be waiting in the subscription's history).
    """
    deadline = time.monotonic() + timeout_s
    last, since, reports_then = None, time.monotonic(), 0
    while time.monotonic() < deadline:
        values = driver.diag()
        with driver.lock:
            reports = driver.diagnostics_received
        if _settled(values, n_images):
            return
        snapshot = _counters(values)
        if snapshot != last:
            last, since, reports_then = snapshot, time.monotonic(), reports
        elif (
            _int(values, "queue_depth") == 0
            and time.monotonic() - since > quiet_s
            and reports - reports_then >= QUIET_REPORTS
        ):
            return
        time.sleep(0.2)
    raise TimeoutError(f"soak: the node did not drain within {timeout_s:.0f} s: {driver.diag()}")


def _settled(values: dict[str, str], n_images: int) -> bool:
    """All ``n_images`` received or counted lost, every submitted window processed, dropped or failed."""
    settled = sum(_int(values, k) for k in ("windows_processed", "windows_dropped", "windows_failed"))
    return (
        _int(values, "images_received") + _int(values, "images_lost") >= n_images
        and _int(values, "queue_depth") == 0
        and settled == _int(values, "windows_submitted")
    )


def _counters(values: dict[str, str]) -> dict[str, int]:
    return {k: _int(values, k) for k in _COUNTER_KEYS}


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    d = SoakConfig()
    parser.add_argument("--images", type=int, default=d.images)
    parser.add_argument("--over-rate", type=float, default=d.over_rate)
    parser.add_argument("--width", type=int, default=d.width)
    parser.add_argument("--height", type=int, default=d.height)
    parser.add_argument("--window", type=int, default=d.window)
    parser.add_argument("--stride", type=int, default=d.stride)
    parser.add_argument("--image-queue-depth", type=int, default=d.image_queue_depth)
    parser.add_argument("--device", default=d.device)
    parser.add_argument("--weights", default=d.weights)
    parser.add_argument("--domain", type=int, default=int(os.environ.get("ROS_DOMAIN_ID", d.domain)))
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    cfg = SoakConfig(
        images=args.images,
        over_rate=args.over_rate,
        width=args.width,
        height=args.height,
        window=args.window,
        stride=args.stride,
        device=args.device,
        weights=args.weights,
        image_queue_depth=args.image_queue_depth,
        domain=args.domain,
    )
    result = run_soak(cfg)
    for line in result.lines():
        print(line)
    if args.json is not None:
        args.json.write_text(json.dumps({**asdict(result), "gaps": result.gaps, "resets": result.resets}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
