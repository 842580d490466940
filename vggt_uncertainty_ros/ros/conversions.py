"""Conversions between ROS messages and the library's numpy types.

* images: ``sensor_msgs/Image`` <-> ``[H,W,3]`` uint8 RGB with the project's step- and
  endianness-aware codec (:mod:`vggt_uncertainty_ros.data.image_codec`; no cv_bridge), and
  ``sensor_msgs/CompressedImage`` (JPEG, PNG; image_transport "compressed") with Pillow;
* calibration: ``sensor_msgs/CameraInfo`` -> the published image's pinhole ``K`` (ROI and
  binning applied, :func:`~vggt_uncertainty_ros.online.intrinsics_check.effective_intrinsics`);
* stamps: ``builtin_interfaces/Time`` <-> integer nanoseconds;
* message info: a subscription callback's ``MessageInfo`` -> (publisher GID, publication
  sequence number), the input of the transport-loss count
  (:mod:`vggt_uncertainty_ros.online.transport_loss`);
* poses: 4x4 ``T_parent_child`` + 6x6 covariance (ROS order ``[x, y, z, rotX, rotY, rotZ]``
  in the parent/header frame) -> ``PoseWithCovarianceStamped``, ``Odometry``,
  ``TransformStamped``; ``Odometry`` -> 4x4.

The relative-pose frame-id convention is re-exported from
:mod:`vggt_uncertainty_ros.online.measurements`.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose, PoseWithCovarianceStamped, TransformStamped
from nav_msgs.msg import Odometry
from PIL import Image as PILImage
from PIL import UnidentifiedImageError
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from vggt_uncertainty_ros.data.image_codec import decode_image, encode_image, to_rgb8
from vggt_uncertainty_ros.errors import ImageEncodingError
from vggt_uncertainty_ros.geometry import (
    cov_to_ros_msg_list,
    pose_from_message_fields,
    rotmat_to_quat,
)
from vggt_uncertainty_ros.online.intrinsics_check import CameraIntrinsics, effective_intrinsics
from vggt_uncertainty_ros.online.measurements import format_anchor_frame_id, parse_anchor_frame_id

__all__ = [
    "camera_info_intrinsics",
    "compressed_image_to_rgb",
    "format_anchor_frame_id",
    "image_msg_to_rgb",
    "ns_to_stamp",
    "odometry_msg",
    "odometry_to_matrix",
    "parse_anchor_frame_id",
    "publisher_sequence",
    "pose_with_covariance_msg",
    "rgb_to_compressed_msg",
    "rgb_to_image_msg",
    "stamp_to_ns",
    "transform_msg",
]

_NS = 1_000_000_000


def stamp_to_ns(stamp: Time) -> int:
    """``builtin_interfaces/Time`` -> integer nanoseconds."""
    return int(stamp.sec) * _NS + int(stamp.nanosec)


def publisher_sequence(info: Mapping[str, Any] | None) -> tuple[bytes | None, int | None]:
    """The publisher's GID bytes and the sample's publication sequence number from a ``MessageInfo``.

    ``MessageInfo`` is the dict rclpy passes as a subscription callback's second argument
    (``publisher_gid`` = ``{"implementation_identifier", "data"}``, and
    ``publication_sequence_number``, 1, 2, ... per publisher). Either is None where the
    middleware does not fill it.
    """
    if not info:
        return None, None
    gid = info.get("publisher_gid")
    data = gid.get("data") if isinstance(gid, Mapping) else None
    sequence = info.get("publication_sequence_number")
    return (bytes(data) if data else None), (int(sequence) if sequence is not None else None)


def ns_to_stamp(stamp_ns: int) -> Time:
    """Integer nanoseconds (≥ 0) -> ``builtin_interfaces/Time``."""
    sec, nanosec = divmod(int(stamp_ns), _NS)
    return Time(sec=sec, nanosec=nanosec)


def image_msg_to_rgb(msg: Image) -> np.ndarray:
    """Decode a ``sensor_msgs/Image`` into ``[H,W,3]`` uint8 RGB.

    Supports rgb8, bgr8, rgba8, bgra8, mono8 and mono16, honouring ``step`` padding and
    ``is_bigendian``.

    Raises:
        ImageEncodingError: unsupported encoding, or ``len(data) != height * step``.
    """
    array = decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian, msg.data)
    return np.ascontiguousarray(to_rgb8(array, msg.encoding))


#: Pillow formats accepted in a ``CompressedImage`` (image_transport's "compressed" plugin)
COMPRESSED_FORMATS = ("JPEG", "PNG")


def compressed_image_to_rgb(msg: CompressedImage) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG or PNG) into ``[H,W,3]`` uint8 RGB.

    The codec is read from the data itself; ``format`` (e.g. ``"rgb8; jpeg compressed bgr8"``)
    is only checked for image_transport's depth variant, which is refused.

    Raises:
        ImageEncodingError: a ``compressedDepth`` message, data that is no JPEG or PNG, or
            data Pillow cannot decode.
    """
    if "compresseddepth" in msg.format.lower().replace(" ", ""):
        raise ImageEncodingError(f"compressed depth images are not supported (format {msg.format!r})")
    try:
        with PILImage.open(io.BytesIO(bytes(msg.data))) as img:
            if img.format not in COMPRESSED_FORMATS:
                raise ImageEncodingError(f"compressed image is {img.format}, expected JPEG or PNG")
            rgb = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, PILImage.DecompressionBombError, OSError, ValueError) as err:
        raise ImageEncodingError(f"cannot decode compressed image (format {msg.format!r}): {err}") from err
    if rgb.ndim != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageEncodingError(f"compressed image decodes to an empty image {rgb.shape}")
    return np.ascontiguousarray(rgb)


def rgb_to_compressed_msg(image: np.ndarray, fmt: str, stamp_ns: int, frame_id: str) -> CompressedImage:
    """Encode ``[H,W,3]`` uint8 RGB as a ``CompressedImage`` (``fmt`` ``"jpeg"`` or ``"png"``)."""
    buf = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(image)).save(buf, format=fmt.upper())
    msg = CompressedImage()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.format = f"rgb8; {fmt.lower()} compressed rgb8"
    msg.data = buf.getvalue()
    return msg


def rgb_to_image_msg(image: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> Image:
    """Encode an array (in ``encoding``'s layout) into a ``sensor_msgs/Image`` (host byte order)."""
    step, data = encode_image(image, encoding)
    msg = Image()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(np.little_endian is False)
    msg.step = int(step)
    msg.data = data
    return msg


def _fill_pose(pose: Pose, T: np.ndarray) -> None:
    q = rotmat_to_quat(np.asarray(T[:3, :3], dtype=np.float64))
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in T[:3, 3])
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (float(v) for v in q)


def pose_with_covariance_msg(
    T_parent_child: np.ndarray, cov_ros: np.ndarray, frame_id: str, stamp_ns: int
) -> PoseWithCovarianceStamped:
    """Build a ``PoseWithCovarianceStamped``.

    Args:
        T_parent_child: 4x4 pose of the child in ``frame_id`` (the header/parent frame).
        cov_ros: 6x6 covariance, ROS order ``[x, y, z, rotX, rotY, rotZ]``, perturbations
            expressed in the header frame; unit², rad².
        frame_id: header frame.
        stamp_ns: header stamp, integer ns.
    """
    msg = PoseWithCovarianceStamped()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    _fill_pose(msg.pose.pose, T_parent_child)
    msg.pose.covariance = cov_to_ros_msg_list(np.asarray(cov_ros, dtype=np.float64))
    return msg


def odometry_msg(
    T_odom_base: np.ndarray,
    cov_ros: np.ndarray,
    odom_frame: str,
    base_frame: str,
    stamp_ns: int,
    twist: np.ndarray | None = None,
    twist_cov: np.ndarray | None = None,
) -> Odometry:
    """``nav_msgs/Odometry`` of ``base_frame`` in ``odom_frame``.

    Args:
        T_odom_base: 4x4 pose; ``cov_ros`` its 6x6 covariance, ROS order in ``odom_frame``.
        odom_frame, base_frame: ``header.frame_id`` and ``child_frame_id``.
        stamp_ns: header stamp, ns.
        twist: ``[vx, vy, vz, wx, wy, wz]`` of the base in ``base_frame`` (REP 103 order); None
            when unknown: zeros with ``twist.covariance[0] = -1`` ("not provided").
        twist_cov: its 6x6 covariance, same order.
    """
    msg = Odometry()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = odom_frame
    msg.child_frame_id = base_frame
    _fill_pose(msg.pose.pose, T_odom_base)
    msg.pose.covariance = cov_to_ros_msg_list(np.asarray(cov_ros, dtype=np.float64))
    if twist is None or twist_cov is None:
        twist_cov_list = [0.0] * 36
        twist_cov_list[0] = -1.0
        msg.twist.covariance = twist_cov_list
        return msg
    lin, ang = msg.twist.twist.linear, msg.twist.twist.angular
    lin.x, lin.y, lin.z, ang.x, ang.y, ang.z = (float(v) for v in np.asarray(twist, dtype=np.float64))
    msg.twist.covariance = cov_to_ros_msg_list(np.asarray(twist_cov, dtype=np.float64))
    return msg


def transform_msg(T_parent_child: np.ndarray, parent: str, child: str, stamp_ns: int) -> TransformStamped:
    """``geometry_msgs/TransformStamped`` of ``child`` in ``parent``."""
    msg = TransformStamped()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = parent
    msg.child_frame_id = child
    q = rotmat_to_quat(np.asarray(T_parent_child[:3, :3], dtype=np.float64))
    t = msg.transform.translation
    t.x, t.y, t.z = (float(v) for v in T_parent_child[:3, 3])
    r = msg.transform.rotation
    r.x, r.y, r.z, r.w = (float(v) for v in q)
    return msg


def odometry_to_matrix(msg: Odometry) -> np.ndarray:
    """4x4 pose of ``child_frame_id`` in ``header.frame_id`` from ``nav_msgs/Odometry``, metres.

    All-NaN for a non-finite pose or a zero quaternion (the tracker rejects and counts it).
    """
    p, o = msg.pose.pose.position, msg.pose.pose.orientation
    return pose_from_message_fields((p.x, p.y, p.z), (o.x, o.y, o.z, o.w))


def camera_info_intrinsics(msg: CameraInfo) -> CameraIntrinsics:
    """Pinhole ``K`` (pixels) and size of the image a ``CameraInfo`` describes (REP 104).

    Raises:
        CameraInfoError: ``K`` is uncalibrated (zeros) or not finite, or the size is empty.
    """
    roi = msg.roi
    return effective_intrinsics(
        np.asarray(msg.k, dtype=np.float64),
        msg.width,
        msg.height,
        binning=(msg.binning_x, msg.binning_y),
        roi=(roi.x_offset, roi.y_offset, roi.width, roi.height),
    )
