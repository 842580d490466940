"""Hostile images over DDS (issue 14, item 7): no crash, every rejection counted, valid poses after.

One node process (tiny backbone on CPU, window 4/2, ``max_image_pixels`` = 1920 x 1080) gets
one message of each category below, each with its own fresh stamp unless the category is
about stamps. Every category states what the node must count for it; the test then checks
``/diagnostics`` counter by counter, and that a clean sequence sent afterwards gets finite
poses on ``~/pose``.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from node_process import Driver, domain_id, ros_env, start_node, stop_node, textured_frames, write_params

from vggt_uncertainty_ros.ros.conversions import rgb_to_image_msg, stamp_to_ns

CAMERA = "cam_fuzz"
SIZE, STRIDE = 4, 2
H, W = 48, 64
MAX_PIXELS = 1920 * 1080
DT_NS = 50_000_000


@dataclass(frozen=True)
class Category:
    """One kind of hostile (or odd but valid) message and the counter it must move."""

    name: str
    make: Callable[[int, int], object]  # (fresh stamp ns, last valid stamp ns) -> Image
    counts: str  # "rejected/<reason>", "dropped/<reason>" or "accepted"


def _rgb(stamp_ns: int, h: int = H, w: int = W, seed: int = 0):
    return rgb_to_image_msg(textured_frames(1, h, w, seed=seed)[0], "rgb8", stamp_ns, CAMERA)


def _edit(**fields):
    def make(stamp_ns: int, last_ns: int):
        msg = _rgb(stamp_ns)
        for key, value in fields.items():
            setattr(msg, key, value)
        return msg

    return make


def _raw(encoding: str, h: int, w: int, step: int, n_bytes: int, bigendian: int = 0):
    def make(stamp_ns: int, last_ns: int):
        msg = _rgb(stamp_ns)
        msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian = encoding, h, w, step, bigendian
        msg.data = bytes(np.random.default_rng(n_bytes).integers(0, 256, n_bytes, dtype=np.uint8))
        return msg

    return make


def _stamp(sec: int, nanosec: int):
    def make(stamp_ns: int, last_ns: int):
        msg = _rgb(stamp_ns)
        msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
        return msg

    return make


def _at(offset_from_last_ns: int):
    return lambda stamp_ns, last_ns: _rgb(last_ns + offset_from_last_ns)


def _future(stamp_ns: int, last_ns: int):
    return _rgb(time.time_ns() + 86_400 * 10**9)


def _encoded(encoding: str, bigendian: int = 0, pad: int = 0, frame_id: str = CAMERA, h: int = H, w: int = W):
    def make(stamp_ns: int, last_ns: int):
        rgb = textured_frames(1, h, w, seed=3)[0]
        stored = {
            "rgb8": rgb,
            "bgr8": rgb[..., ::-1],
            "rgba8": np.dstack([rgb, np.full((h, w), 255, np.uint8)]),
            "bgra8": np.dstack([rgb[..., ::-1], np.full((h, w), 255, np.uint8)]),
            "mono8": rgb[..., 0],
            "mono16": rgb[..., 0].astype(np.uint16) * 257,
        }[encoding]
        msg = rgb_to_image_msg(np.ascontiguousarray(stored), encoding, stamp_ns, frame_id)
        if bigendian and encoding == "mono16":
            msg.data = np.frombuffer(bytes(msg.data), "<u2").astype(">u2").tobytes()
        msg.is_bigendian = bigendian
        if pad:
            rows = [bytes(msg.data[r * msg.step : (r + 1) * msg.step]) + b"\0" * pad for r in range(msg.height)]
            msg.step += pad
            msg.data = b"".join(rows)
        return msg

    return make


CATEGORIES = [
    Category("encoding yuv422", _edit(encoding="yuv422"), "rejected/unsupported_encoding"),
    Category("encoding 32FC1 (depth)", _edit(encoding="32FC1"), "rejected/unsupported_encoding"),
    Category("encoding empty", _edit(encoding=""), "rejected/unsupported_encoding"),
    Category("encoding upper case RGB8", _edit(encoding="RGB8"), "rejected/unsupported_encoding"),
    Category("encoding bayer_rggb8", _edit(encoding="bayer_rggb8"), "rejected/unsupported_encoding"),
    Category("data 10 bytes short", _raw("rgb8", H, W, 3 * W, H * 3 * W - 10), "rejected/size_mismatch"),
    Category("data 10 bytes long", _raw("rgb8", H, W, 3 * W, H * 3 * W + 10), "rejected/size_mismatch"),
    Category("step shorter than a row", _raw("rgb8", H, W, 3 * W - 3, H * (3 * W - 3)), "rejected/decode_error"),
    Category("step 0, no data", _raw("rgb8", H, W, 0, 0), "rejected/decode_error"),
    Category("height 0", _raw("rgb8", 0, W, 3 * W, 0), "rejected/size_mismatch"),
    Category("width 0", _raw("rgb8", H, 0, 0, 0), "rejected/size_mismatch"),
    Category("zero size", _raw("rgb8", 0, 0, 0, 0), "rejected/size_mismatch"),
    Category("huge declared size, tiny data", _raw("rgb8", 100_000, 100_000, 300_000, 12), "rejected/too_large"),
    Category(
        "4K rgb8 above max_image_pixels", _raw("rgb8", 2160, 3840, 3 * 3840, 2160 * 3 * 3840), "rejected/too_large"
    ),
    Category("1 x 2000 (extreme aspect)", _raw("rgb8", 2000, 1, 3, 2000 * 3), "rejected/extreme_aspect_ratio"),
    Category(
        "mono16 step shorter than a row", _raw("mono16", H, W, 2 * W - 1, H * (2 * W - 1)), "rejected/decode_error"
    ),
    Category("mono16 odd row padding", _encoded("mono16", pad=1), "accepted"),
    Category("mono16 odd data length", _raw("mono16", H - 1, W, 2 * W + 1, (H - 1) * (2 * W + 1)), "accepted"),
    Category("mono16 big-endian", _encoded("mono16", bigendian=1), "accepted"),
    Category("mono16 little-endian", _encoded("mono16"), "accepted"),
    Category("rgb8 flagged big-endian", _encoded("rgb8", bigendian=1), "accepted"),
    Category("bgr8 with row padding", _encoded("bgr8", pad=4), "accepted"),
    Category("rgba8", _encoded("rgba8"), "accepted"),
    Category("bgra8", _encoded("bgra8"), "accepted"),
    Category("mono8", _encoded("mono8"), "accepted"),
    Category("empty frame_id", _encoded("rgb8", frame_id=""), "accepted"),
    Category("stamp nanosec = 1e9", _stamp(1_700_000_000, 1_000_000_000), "rejected/invalid_stamp"),
    Category("stamp nanosec = 2^32 - 1", _stamp(1_700_000_000, 2**32 - 1), "rejected/invalid_stamp"),
    Category("stamp sec negative", _stamp(-5, 0), "rejected/invalid_stamp"),
    Category("stamp a day in the future", _future, "rejected/invalid_stamp"),
    Category("duplicate stamp", _at(0), "dropped/duplicate_stamp"),
    Category("one frame out of order", _at(-DT_NS // 2), "dropped/out_of_order"),
    Category("size change to 40x56", _encoded("rgb8", h=40, w=56), "accepted"),
    Category("size change back", _encoded("rgb8"), "accepted"),
    Category("1 x 1 image", _encoded("rgb8", h=1, w=1), "accepted"),
]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ros_fuzz")
    params = write_params(
        tmp / "params.yaml",
        window_size=SIZE,
        window_stride=STRIDE,
        camera_frame=CAMERA,
        image_qos="reliable",
        queue_depth=2,
        diagnostics_period_s=0.25,
        max_image_pixels=MAX_PIXELS,
        **{"backbone.weights": "tiny", "backbone.device": "cpu", "backbone.compile": False},
    )
    domain = domain_id(offset=23)
    env = ros_env(tmp / "ros_log", domain)
    os.environ.update({k: env[k] for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOG_DIR")})
    log_path = tmp / "node.log"
    proc = start_node(params, env, log_path)
    driver = Driver(domain)
    try:
        driver.wait_for_subscriber(90.0)
    except AssertionError as err:
        proc.kill()
        driver.close()
        raise AssertionError(f"{err}\nnode log:\n{log_path.read_text()[-3000:]}") from None
    yield proc, driver, log_path
    code, _ = stop_node(proc)
    driver.close()
    assert code == 0, log_path.read_text()[-3000:]


def test_hostile_images_are_counted_and_the_node_recovers(node):
    proc, d, log_path = node
    assert len(CATEGORIES) >= 30
    t0 = 1_700_000_000 * 10**9
    frames = textured_frames(2 * SIZE, H, W, seed=1)
    stamp = t0
    # a clean start so that stamp categories have a previous frame
    for k in range(2):
        stamp += DT_NS
        d.image_pub.publish(rgb_to_image_msg(frames[k], "rgb8", stamp, CAMERA))
    last_valid = stamp
    expected: Counter[str] = Counter()
    n_done = 2
    for cat in CATEGORIES:
        stamp += DT_NS
        msg = cat.make(stamp, last_valid)
        # one at a time: the node's reliable subscription keeps the last 10 messages, so a burst
        # of large ones could be evicted before the callback runs (a DDS drop, not the node's)
        d.wait_diag(lambda v, n=n_done: int(v.get("images_received", 0)) >= n, 60.0, f"before {cat.name}")
        d.image_pub.publish(msg)
        n_done += 1
        expected[cat.counts] += 1
        if cat.counts == "accepted":
            last_valid = stamp_to_ns(msg.header.stamp)
    n_sent = 2 + len(CATEGORIES)

    def all_counted(v):
        return int(v.get("images_received", 0)) == n_sent

    try:
        v = d.wait_diag(all_counted, 120.0, "every fuzz message counted")
    except AssertionError as err:
        raise AssertionError(f"{err}: {d.latest_diagnostics()}\n{log_path.read_text()[-3000:]}") from None
    for key, n in expected.items():
        if key == "accepted":
            continue
        kind, reason = key.split("/")
        assert int(v.get(f"images_{kind}/{reason}", 0)) == n, (key, v)
    n_rejected = sum(n for k, n in expected.items() if k.startswith("rejected/"))
    n_dropped = sum(n for k, n in expected.items() if k.startswith("dropped/"))
    assert int(v["images_rejected"]) == n_rejected and int(v["images_dropped"]) == n_dropped
    assert int(v.get("resets", 0)) == 0, "no glitch may reset the trajectory"
    # 47x64 (odd mono16) and back, 40x56 and back, 1x1
    assert int(v.get("events/size_changed", 0)) == 5
    assert proc.poll() is None, log_path.read_text()[-3000:]

    # then a clean sequence gets finite poses
    start = stamp + 10 * DT_NS
    clean = [start + k * DT_NS for k in range(2 * SIZE)]
    for s, frame in zip(clean, frames):
        d.image_pub.publish(rgb_to_image_msg(frame, "rgb8", s, CAMERA))
    d.wait_for(lambda: any(stamp_to_ns(p.header.stamp) == clean[-1] for p in d.poses), 120.0, "poses after fuzz")
    with d.lock:
        after = [p for p in d.poses if stamp_to_ns(p.header.stamp) in clean]
    assert after and all(np.isfinite(np.asarray(p.pose.covariance)).all() for p in after)
    assert all(np.isfinite([p.pose.pose.position.x, p.pose.pose.orientation.w]).all() for p in after)
    assert proc.poll() is None
