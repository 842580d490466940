"""Tests of message conversions (no DDS traffic): images, stamps, poses, diagnostics."""

from __future__ import annotations

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from scipy.spatial.transform import Rotation

from vggt_uncertainty_ros.data.image_codec import encode_image
from vggt_uncertainty_ros.errors import ImageEncodingError
from vggt_uncertainty_ros.geometry import make_transform
from vggt_uncertainty_ros.online.measurements import parse_anchor_frame_id
from vggt_uncertainty_ros.ros import conversions as conv
from vggt_uncertainty_ros.ros import diagnostics as diag


def _rgb(h: int = 5, w: int = 7) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("stamp_ns", [0, 1, 999_999_999, 1_305_031_102_175_304_000])
def test_stamp_round_trip(stamp_ns):
    assert conv.stamp_to_ns(conv.ns_to_stamp(stamp_ns)) == stamp_ns


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_colour_images_decode_to_rgb(encoding):
    rgb = _rgb()
    stored = {
        "rgb8": rgb,
        "bgr8": rgb[..., ::-1],
        "rgba8": np.dstack([rgb, np.full(rgb.shape[:2], 9, np.uint8)]),
        "bgra8": np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 9, np.uint8)]),
    }[encoding]
    msg = conv.rgb_to_image_msg(np.ascontiguousarray(stored), encoding, 5, "cam")
    out = conv.image_msg_to_rgb(msg)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgb)


def test_padded_rows_and_big_endian_mono16():
    rgb = _rgb()
    step, data = encode_image(rgb, "rgb8")
    padded = b"".join(data[r * step : (r + 1) * step] + b"\xee" * 5 for r in range(rgb.shape[0]))
    msg = conv.rgb_to_image_msg(rgb, "rgb8", 0, "cam")
    msg.step, msg.data = step + 5, padded
    np.testing.assert_array_equal(conv.image_msg_to_rgb(msg), rgb)

    mono = np.arange(35, dtype=np.uint16).reshape(5, 7) * 1000
    msg = conv.rgb_to_image_msg(mono, "mono16", 0, "cam")
    msg.is_bigendian, msg.data = 1, mono.astype(">u2").tobytes()
    np.testing.assert_array_equal(conv.image_msg_to_rgb(msg)[..., 0], (mono >> 8).astype(np.uint8))


def test_bad_images_raise():
    msg = conv.rgb_to_image_msg(_rgb(), "rgb8", 0, "cam")
    msg.encoding = "yuv422"
    with pytest.raises(ImageEncodingError):
        conv.image_msg_to_rgb(msg)
    msg = conv.rgb_to_image_msg(_rgb(), "rgb8", 0, "cam")
    msg.data = bytes(msg.data)[:-3]
    with pytest.raises(ImageEncodingError):
        conv.image_msg_to_rgb(msg)


def test_pose_message_carries_pose_and_row_major_covariance():
    q = Rotation.from_euler("xyz", [0.1, -0.2, 0.3]).as_quat()
    T = make_transform(Rotation.from_quat(q).as_matrix(), np.array([1.0, -2.0, 3.0]))
    A = np.random.default_rng(1).normal(size=(6, 6))
    cov = A @ A.T
    msg = conv.pose_with_covariance_msg(T, cov, conv.format_anchor_frame_id("cam", 12_000_000_001), 42)
    assert parse_anchor_frame_id(msg.header.frame_id) == ("cam", 12_000_000_001)
    assert conv.stamp_to_ns(msg.header.stamp) == 42
    p, o = msg.pose.pose.position, msg.pose.pose.orientation
    np.testing.assert_allclose([p.x, p.y, p.z], [1.0, -2.0, 3.0])
    np.testing.assert_allclose(np.abs([o.x, o.y, o.z, o.w]), np.abs(q), atol=1e-12)
    np.testing.assert_allclose(np.asarray(msg.pose.covariance).reshape(6, 6), cov)


def test_odometry_round_trip():
    T = make_transform(Rotation.from_rotvec([0.0, 0.4, 0.1]).as_matrix(), np.array([0.5, 0.0, -1.0]))
    msg = conv.odometry_msg(T, np.eye(6) * 0.1, "vggt_odom", "base_link", 7)
    assert (msg.header.frame_id, msg.child_frame_id) == ("vggt_odom", "base_link")
    assert msg.twist.covariance[0] == -1.0
    np.testing.assert_allclose(conv.odometry_to_matrix(msg), T, atol=1e-12)
    tf = conv.transform_msg(T, "vggt_odom", "base_link", 7)
    assert tf.child_frame_id == "base_link" and tf.transform.translation.z == pytest.approx(-1.0)


def test_diagnostics_array_round_trip():
    counters = diag.InputCounters()
    counters.receive()
    counters.receive()
    counters.reject(diag.REJECT_ENCODING)
    counters.drop(diag.DROP_DUPLICATE)
    counters.event("stamp_backwards")
    values = {**counters.snapshot(), "inference_latency_s": 0.25, "windows_per_s": float("nan")}
    array = diag.build_diagnostics(values, 3, "cpu", level=DiagnosticStatus.WARN, message="warn")
    got = diag.status_values(array)
    assert got["images_received"] == "2"
    assert got["images_rejected/unsupported_encoding"] == "1"
    assert got["images_dropped/duplicate_stamp"] == "1"
    assert got["events/stamp_backwards"] == "1"
    assert got["inference_latency_s"] == "0.25" and got["windows_per_s"] == "nan"
    assert array.status[0].level == DiagnosticStatus.WARN


def test_camera_info_applies_roi_and_binning():
    from sensor_msgs.msg import CameraInfo

    msg = CameraInfo(width=640, height=480, binning_x=2, binning_y=2)
    msg.k = [500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0]
    msg.roi.x_offset, msg.roi.y_offset, msg.roi.width, msg.roi.height = 20, 10, 600, 460
    info = conv.camera_info_intrinsics(msg)
    assert (info.width, info.height) == (300, 230)
    np.testing.assert_allclose(info.K, [[250.0, 0.0, 150.0], [0.0, 250.0, 115.0], [0.0, 0.0, 1.0]])


def test_publisher_sequence_reads_rclpy_message_info():
    info = {
        "source_timestamp": 1,
        "received_timestamp": 2,
        "publication_sequence_number": 17,
        "reception_sequence_number": None,
        "publisher_gid": {"implementation_identifier": "rmw_fastrtps_cpp", "data": b"\x01" * 16},
    }
    assert conv.publisher_sequence(info) == (b"\x01" * 16, 17)
    assert conv.publisher_sequence({**info, "publication_sequence_number": None}) == (b"\x01" * 16, None)
    assert conv.publisher_sequence({**info, "publisher_gid": None}) == (None, 17)
    assert conv.publisher_sequence(None) == (None, None)
