"""ROS-free conventions of the node's relative-pose measurements.

A ``~/relative_pose`` message carries the pose ``T_0_i`` of window frame i in the camera
frame of the window's frame 0 (the *anchor*). Its ``header.stamp`` is frame i's image stamp;
its ``header.frame_id`` names the anchor: ``"<camera_frame>@<sec>.<nanosec:09d>"``, i.e.
the camera frame at the anchor image's stamp. A consumer that sees only standard messages
recovers both stamps a measurement connects with :func:`parse_anchor_frame_id`.
"""

from __future__ import annotations

import re

from vggt_uncertainty_ros.errors import DataError

_ANCHOR_RE = re.compile(r"^(?P<frame>.+)@(?P<sec>\d+)\.(?P<nsec>\d{9})$")


def format_anchor_frame_id(camera_frame: str, anchor_stamp_ns: int) -> str:
    """Frame id of a relative-pose measurement anchored at ``anchor_stamp_ns``.

    Args:
        camera_frame: the camera's optical frame id, e.g. ``"camera_optical"``.
        anchor_stamp_ns: image stamp of the window's frame 0, integer nanoseconds (≥ 0).

    Returns:
        ``"<camera_frame>@<sec>.<nanosec 9 digits>"``.
    """
    if anchor_stamp_ns < 0:
        raise DataError(f"anchor stamp must be non-negative, got {anchor_stamp_ns} ns")
    sec, nsec = divmod(int(anchor_stamp_ns), 1_000_000_000)
    return f"{camera_frame}@{sec}.{nsec:09d}"


def parse_anchor_frame_id(frame_id: str) -> tuple[str, int]:
    """Inverse of :func:`format_anchor_frame_id`.

    Returns:
        ``(camera_frame, anchor_stamp_ns)``.

    Raises:
        DataError: if ``frame_id`` does not follow the convention.
    """
    match = _ANCHOR_RE.match(frame_id)
    if match is None:
        raise DataError(f"frame_id {frame_id!r} is not an anchored camera frame '<frame>@<sec>.<nanosec 9 digits>'")
    return match["frame"], int(match["sec"]) * 1_000_000_000 + int(match["nsec"])
