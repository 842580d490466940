"""Fixtures of the evaluator tests: one small synthetic sequence and a relative-pose bag writer."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from vggt_uncertainty_ros.geometry import rotmat_to_quat

POSE_TOPIC = "/vggt_uncertainty_node/relative_pose"
POSE_MSGTYPE = "geometry_msgs/msg/PoseWithCovarianceStamped"
N_FRAMES = 40


@pytest.fixture(scope="session")
def synth_seq(tmp_path_factory: pytest.TempPathFactory):
    """A 40-frame synthetic sequence in all three data forms (small images)."""
    from vggt_uncertainty_ros.data.synth import generate

    out = tmp_path_factory.mktemp("synth")
    return generate(out, seed=7, n_frames=N_FRAMES, formats=("tum", "ros1", "ros2"), width=96, height=72)


PoseMsg = tuple[int, str, np.ndarray, np.ndarray]  # (stamp_ns, frame_id, T_0_i, cov_ros 6x6)


def _pose_msg(ts, stamp: int, frame_id: str, T: np.ndarray, cov: np.ndarray, ros1: bool):
    types = ts.types
    q = rotmat_to_quat(T[:3, :3]) if np.all(np.isfinite(T)) else np.full(4, np.nan)
    stamp_msg = types["builtin_interfaces/msg/Time"](sec=stamp // 10**9, nanosec=stamp % 10**9)
    header_kw = {"seq": 0} if ros1 else {}
    return types["geometry_msgs/msg/PoseWithCovarianceStamped"](
        header=types["std_msgs/msg/Header"](**header_kw, stamp=stamp_msg, frame_id=frame_id),
        pose=types["geometry_msgs/msg/PoseWithCovariance"](
            pose=types["geometry_msgs/msg/Pose"](
                position=types["geometry_msgs/msg/Point"](x=T[0, 3], y=T[1, 3], z=T[2, 3]),
                orientation=types["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]),
            ),
            covariance=np.asarray(cov, dtype=np.float64).reshape(36),  # row-major, ROS order
        ),
    )


def _serialized_poses(messages: Sequence[PoseMsg], ros1: bool) -> list[tuple[int, bytes]]:
    """(bag time, bytes) per message; bag time = receive order as in a recording."""
    ts = get_typestore(Stores.ROS1_NOETIC if ros1 else Stores.ROS2_HUMBLE)
    serialize = ts.serialize_ros1 if ros1 else ts.serialize_cdr
    return [
        (messages[0][0] + k * 1_000_000, serialize(_pose_msg(ts, s, fid, T, cov, ros1), POSE_MSGTYPE))
        for k, (s, fid, T, cov) in enumerate(messages)
    ]


def write_pose_bag(path: Path, messages: Sequence[PoseMsg], topic: str = POSE_TOPIC) -> Path:
    """Write ``geometry_msgs/PoseWithCovarianceStamped`` messages into a ROS 2 bag (sqlite3)."""
    ts = get_typestore(Stores.ROS2_HUMBLE)
    with Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
        conn = writer.add_connection(topic, POSE_MSGTYPE, typestore=ts)
        for t, data in _serialized_poses(messages, ros1=False):
            writer.write(conn, t, data)
    return path


def copy_bag_with_poses(src: Path, dst: Path, messages: Sequence[PoseMsg], topic: str = POSE_TOPIC) -> Path:
    """A bag of ``src``'s kind (``.bag`` = ROS 1, else ROS 2) holding everything of ``src``
    (images, /tf, ...) plus relative-pose messages, as a recording of the node next to its input."""
    from rosbags.highlevel import AnyReader
    from rosbags.rosbag1 import Writer as Writer1

    ros1 = src.suffix == ".bag"
    ts = get_typestore(Stores.ROS1_NOETIC if ros1 else Stores.ROS2_HUMBLE)
    writer = Writer1(dst) if ros1 else Writer(dst, version=9, storage_plugin=StoragePlugin.SQLITE3)
    with writer:
        conns: dict[tuple[str, str], object] = {}
        with AnyReader([src], default_typestore=ts) as reader:
            for conn, t, raw in reader.messages():
                key = (conn.topic, conn.msgtype)
                if key not in conns:
                    conns[key] = writer.add_connection(conn.topic, conn.msgtype, typestore=reader.typestore)
                writer.write(conns[key], t, raw)
        pose_conn = writer.add_connection(topic, POSE_MSGTYPE, typestore=ts)
        for t, data in _serialized_poses(messages, ros1):
            writer.write(pose_conn, t, data)
    return dst


def read_frames_csv(path: Path) -> dict[str, np.ndarray]:
    """frames.csv as columns (ints for ids and stamps, floats otherwise)."""
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    ints = {"window", "anchor_stamp_ns", "stamp_ns", "index_in_window"}
    return {k: np.array([int(r[k]) if k in ints else float(r[k]) for r in rows]) for k in rows[0]}
