"""TUM RGB-D's recording layout, shared by the readers and the writers.

TUM RGB-D ROS 1 bags carry

* ``/camera/rgb/image_color``: ``sensor_msgs/Image``, rgb8, frame ``/openni_rgb_optical_frame``;
* ``/camera/depth/image``: ``sensor_msgs/Image``, 32FC1 metres (NaN = missing),
  frame ``/openni_depth_optical_frame``;
* ``/camera/rgb/camera_info``, ``/camera/depth/camera_info``: ``sensor_msgs/CameraInfo``;
* ``/tf``: ``tf/tfMessage`` (same definition and MD5 as ``tf2_msgs/TFMessage``) carrying the
  motion-capture pose ``/world -> /kinect`` and the static chain
  ``/kinect -> /openni_camera -> /openni_rgb_frame -> /openni_rgb_optical_frame`` (and the
  depth branch ``/openni_camera -> /openni_depth_frame -> /openni_depth_optical_frame``),
  several transforms per message.

ROS 2 bags hold the same topics with ROS 2 types (``tf2_msgs/msg/TFMessage``); their frame
names drop the leading ``/`` (tf2 in ROS 2 rejects it). Frame names are compared without
leading slashes (:func:`norm_frame`), so either spelling reads back the same.

TUM folders store depth PNGs as ``round(depth_m * TUM_DEPTH_SCALE)`` (0 = no measurement).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial.transform import Rotation

__all__ = [
    "DEFAULT_DEPTH_TOPIC",
    "DEFAULT_IMAGE_TOPIC",
    "DEPTH_INFO_TOPIC",
    "RGB_INFO_TOPIC",
    "TF_ROS1_TYPE",
    "TF_ROS2_TYPE",
    "TF_STATIC_TOPIC",
    "TF_TOPIC",
    "TF_TYPES",
    "TUM_DEPTH_SCALE",
    "TUM_FRAMES",
    "body_to_rgb_optical",
    "norm_frame",
    "tum_static_chain",
]

#: TUM's RGB topic (``sensor_msgs/Image``, rgb8).
DEFAULT_IMAGE_TOPIC = "/camera/rgb/image_color"
#: TUM's depth topic (``sensor_msgs/Image``, 32FC1, metres).
DEFAULT_DEPTH_TOPIC = "/camera/depth/image"
RGB_INFO_TOPIC = "/camera/rgb/camera_info"
DEPTH_INFO_TOPIC = "/camera/depth/camera_info"
TF_TOPIC = "/tf"
TF_STATIC_TOPIC = "/tf_static"
TF_ROS1_TYPE = "tf/msg/tfMessage"
TF_ROS2_TYPE = "tf2_msgs/msg/TFMessage"
TF_TYPES = frozenset({TF_ROS1_TYPE, TF_ROS2_TYPE})
#: TUM depth PNGs store ``round(depth_m * 5000)``; 0 means no measurement.
TUM_DEPTH_SCALE = 5000.0
#: TUM's frame names (ROS 1 spelling).
TUM_FRAMES = {
    "world": "/world",
    "body": "/kinect",
    "camera": "/openni_camera",
    "rgb": "/openni_rgb_frame",
    "rgb_optical": "/openni_rgb_optical_frame",
    "depth": "/openni_depth_frame",
    "depth_optical": "/openni_depth_optical_frame",
}


def norm_frame(frame: str) -> str:
    """A frame name without its leading ``/`` (ROS 1 and ROS 2 spellings compare equal)."""
    return frame.lstrip("/")


def _transform(xyz: Sequence[float], quat_xyzw: Sequence[float]) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat(quat_xyzw).as_matrix()
    T[:3, 3] = xyz
    return T


def tum_static_chain() -> list[tuple[str, str, np.ndarray]]:
    """TUM-like static transforms ``(parent, child, T_parent_child)`` (metres, ROS 1 names).

    The optical frames use the standard ``(-0.5, 0.5, -0.5, 0.5)`` rotation (z forward, x right,
    y down); ``/kinect -> /openni_camera`` is a small fixed marker-to-camera offset.
    """
    optical = (-0.5, 0.5, -0.5, 0.5)
    f = TUM_FRAMES
    return [
        (
            f["body"],
            f["camera"],
            _transform((0.025, -0.01, -0.035), Rotation.from_euler("xyz", [0.01, -0.02, 0.015]).as_quat()),
        ),
        (f["camera"], f["rgb"], _transform((0.0, -0.04, 0.0), (0, 0, 0, 1))),
        (f["rgb"], f["rgb_optical"], _transform((0, 0, 0), optical)),
        (f["camera"], f["depth"], _transform((0.0, -0.02, 0.0), (0, 0, 0, 1))),
        (f["depth"], f["depth_optical"], _transform((0, 0, 0), optical)),
    ]


def body_to_rgb_optical() -> np.ndarray:
    """``T_kinect_rgb_optical`` of :func:`tum_static_chain`: ``[4, 4]``, metres."""
    chain = {child: (parent, T) for parent, child, T in tum_static_chain()}
    out = np.eye(4)
    frame = TUM_FRAMES["rgb_optical"]
    while frame != TUM_FRAMES["body"]:
        parent, T = chain[frame]
        out = T @ out
        frame = parent
    return out
