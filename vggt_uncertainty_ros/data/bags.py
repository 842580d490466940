"""TUM-layout ROS 1 and ROS 2 bags, read and written with ``rosbags`` (no ROS install needed).

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

Ground truth is ``T_world_cam = T_world_kinect(t) @ T_kinect_rgb_optical`` (the chain from the
world frame to the image's ``header.frame_id``), sampled at the motion-capture stamps and
looked up at image stamps by :class:`~vggt_uncertainty_ros.data.groundtruth.GroundTruth`.

ROS 2 bags (sqlite3 or mcap) hold the same topics with ROS 2 types (``tf2_msgs/msg/TFMessage``);
their frame names drop the leading ``/`` (tf2 in ROS 2 rejects it). Frame names are compared
without leading slashes, so either spelling reads back the same.
"""

from __future__ import annotations

import heapq
import logging
import os
import struct
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag1 import Writer as Ros1Writer
from rosbags.rosbag1.reader import decompressors as _ros1_decompressors
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Ros2Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from scipy.spatial.transform import Rotation

from vggt_uncertainty_ros.data.groundtruth import GroundTruth, GtMode
from vggt_uncertainty_ros.data.image_codec import (
    decode_image,
    decode_image_rgb8,
    encode_image,
)
from vggt_uncertainty_ros.data.sequence import (
    DEFAULT_DEPTH_TOPIC,
    DEFAULT_IMAGE_TOPIC,
    SequenceReader,
)
from vggt_uncertainty_ros.data.tum import read_tum_trajectory
from vggt_uncertainty_ros.data.types import Frame
from vggt_uncertainty_ros.errors import (
    DataError,
    ImageEncodingError,
    TopicNotFoundError,
)

__all__ = [
    "DEPTH_INFO_TOPIC",
    "RGB_INFO_TOPIC",
    "TF_TOPIC",
    "TUM_FRAMES",
    "BagReader",
    "Ros1SequenceWriter",
    "Ros2SequenceWriter",
    "bag_topics",
    "read_bag_trajectory",
    "tum_static_chain",
]

_log = logging.getLogger(__name__)

_W = TypeVar("_W", bound="_SequenceBagWriter")

TF_TOPIC = "/tf"
TF_STATIC_TOPIC = "/tf_static"
RGB_INFO_TOPIC = "/camera/rgb/camera_info"
DEPTH_INFO_TOPIC = "/camera/depth/camera_info"
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
_TF_ROS1_TYPE = "tf/msg/tfMessage"
_TF_ROS2_TYPE = "tf2_msgs/msg/TFMessage"
_TF_TYPES = {_TF_ROS1_TYPE, "tf2_msgs/msg/TFMessage"}
#: send the static chain with every n-th motion-capture message (tf1 has no /tf_static)
_STATIC_EVERY = 10
_ROS1_NONE = _ros1_decompressors["none"]


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


def _kinect_to_rgb_optical() -> np.ndarray:
    chain = {child: (parent, T) for parent, child, T in tum_static_chain()}
    out = np.eye(4)
    frame = TUM_FRAMES["rgb_optical"]
    while frame != TUM_FRAMES["body"]:
        parent, T = chain[frame]
        out = T @ out
        frame = parent
    return out


def _norm(frame: str) -> str:
    return frame.lstrip("/")


# --------------------------------------------------------------------------- writing


class _SequenceBagWriter:
    """Shared message building for the ROS 1 / ROS 2 writers (``write_pose/rgb/depth``, ``close``)."""

    ros2: bool = False

    def __init__(self, K: np.ndarray, size: tuple[int, int]) -> None:
        self.K = np.asarray(K, dtype=np.float64)
        self.width, self.height = int(size[0]), int(size[1])
        self._T_body_cam = _kinect_to_rgb_optical()
        self._T_cam_body = np.linalg.inv(self._T_body_cam)
        self._n_pose = 0
        self._seq: dict[str, int] = {}
        self._static = tum_static_chain()

    # subclasses provide: self.ts (typestore), self._conn(topic), self._write(topic, stamp, msg)
    ts: Any

    def _name(self, frame: str) -> str:
        return _norm(frame) if self.ros2 else frame

    def _header(self, topic: str, stamp_ns: int, frame: str) -> Any:
        Time = self.ts.types["builtin_interfaces/msg/Time"]
        Header = self.ts.types["std_msgs/msg/Header"]
        stamp = Time(sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000))
        if self.ros2:
            return Header(stamp=stamp, frame_id=self._name(frame))
        seq = self._seq.get(topic, 0)
        self._seq[topic] = seq + 1
        return Header(seq=seq, stamp=stamp, frame_id=frame)

    def _tf(self, stamp_ns: int, parent: str, child: str, T: np.ndarray) -> Any:
        types = self.ts.types
        q = Rotation.from_matrix(T[:3, :3]).as_quat()
        return types["geometry_msgs/msg/TransformStamped"](
            header=self._header("__tf_inner__", stamp_ns, parent),
            child_frame_id=self._name(child),
            transform=types["geometry_msgs/msg/Transform"](
                translation=types["geometry_msgs/msg/Vector3"](
                    x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])
                ),
                rotation=types["geometry_msgs/msg/Quaternion"](
                    x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])
                ),
            ),
        )

    def write_pose(self, stamp_ns: int, T_world_cam: np.ndarray) -> None:
        """Publish the motion-capture pose at ``stamp_ns`` on ``/tf`` as ``/world -> /kinect``.

        Args:
            stamp_ns: Motion-capture stamp, nanoseconds.
            T_world_cam: ``[4, 4]`` pose of the RGB optical frame in the world, metres.
        """
        T_world_body = np.asarray(T_world_cam, dtype=np.float64) @ self._T_cam_body
        transforms = [self._tf(stamp_ns, TUM_FRAMES["world"], TUM_FRAMES["body"], T_world_body)]
        if self._n_pose % _STATIC_EVERY == 0:
            transforms += [self._tf(stamp_ns, p, c, T) for p, c, T in self._static]
        self._n_pose += 1
        tf_type = _TF_ROS2_TYPE if self.ros2 else _TF_ROS1_TYPE
        self._write(TF_TOPIC, stamp_ns, self.ts.types[tf_type](transforms=transforms), tf_type)

    def _camera_info(self, topic: str, stamp_ns: int, frame: str) -> Any:
        types = self.ts.types
        P = np.hstack([self.K, np.zeros((3, 1))])
        fields = {"d": np.zeros(5), "k": self.K.reshape(-1), "r": np.eye(3).reshape(-1), "p": P.reshape(-1)}
        if not self.ros2:
            fields = {k.upper(): v for k, v in fields.items()}
        return types["sensor_msgs/msg/CameraInfo"](
            header=self._header(topic, stamp_ns, frame),
            height=self.height,
            width=self.width,
            distortion_model="plumb_bob",
            binning_x=0,
            binning_y=0,
            roi=types["sensor_msgs/msg/RegionOfInterest"](
                x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
            ),
            **fields,
        )

    def _image(self, topic: str, stamp_ns: int, frame: str, array: np.ndarray, encoding: str) -> Any:
        step, data = encode_image(array, encoding)
        return self.ts.types["sensor_msgs/msg/Image"](
            header=self._header(topic, stamp_ns, frame),
            height=array.shape[0],
            width=array.shape[1],
            encoding=encoding,
            is_bigendian=0,
            step=step,
            data=np.frombuffer(data, dtype=np.uint8),
        )

    def write_rgb(self, stamp_ns: int, rgb: np.ndarray, *, log_time_ns: int | None = None) -> None:
        """Write an ``[H, W, 3]`` uint8 RGB image (rgb8) and its camera info.

        Args:
            stamp_ns: ``header.stamp``, nanoseconds.
            rgb: The image.
            log_time_ns: Bag (receive) time; defaults to ``stamp_ns``.
        """
        frame = TUM_FRAMES["rgb_optical"]
        log = stamp_ns if log_time_ns is None else log_time_ns
        info = self._camera_info(RGB_INFO_TOPIC, stamp_ns, frame)
        self._write(RGB_INFO_TOPIC, log, info, "sensor_msgs/msg/CameraInfo")
        image = self._image(DEFAULT_IMAGE_TOPIC, stamp_ns, frame, rgb, "rgb8")
        self._write(DEFAULT_IMAGE_TOPIC, log, image, "sensor_msgs/msg/Image")

    def write_depth(self, stamp_ns: int, depth_m: np.ndarray) -> None:
        """Write an ``[H, W]`` float32 depth map (32FC1, metres, NaN = missing) and its camera info."""
        frame = TUM_FRAMES["depth_optical"]
        info = self._camera_info(DEPTH_INFO_TOPIC, stamp_ns, frame)
        self._write(DEPTH_INFO_TOPIC, stamp_ns, info, "sensor_msgs/msg/CameraInfo")
        image = self._image(
            DEFAULT_DEPTH_TOPIC, stamp_ns, frame, np.asarray(depth_m, dtype=np.float32), "32FC1"
        )
        self._write(DEFAULT_DEPTH_TOPIC, stamp_ns, image, "sensor_msgs/msg/Image")

    def _write(self, topic: str, stamp_ns: int, msg: Any, msgtype: str) -> None:
        raise NotImplementedError

    def __enter__(self: _W) -> _W:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        raise NotImplementedError


class Ros1SequenceWriter(_SequenceBagWriter):
    """Write a TUM-layout ROS 1 bag (see the module docstring), streaming.

    Args:
        path: Output ``.bag`` (must not exist).
        K: ``[3, 3]`` camera matrix, pixels (for the camera-info topics).
        size: ``(width, height)`` of the images, pixels.
        compression: ``None`` (default; fastest to read), ``"bz2"`` or ``"lz4"`` chunks.
    """

    def __init__(
        self, path: str | Path, K: np.ndarray, size: tuple[int, int], compression: str | None = None
    ) -> None:
        super().__init__(K, size)
        self.path = Path(path)
        self.ts = get_typestore(Stores.ROS1_NOETIC)
        self.ts.register(get_types_from_msg("geometry_msgs/TransformStamped[] transforms", _TF_ROS1_TYPE))
        formats = {"bz2": Ros1Writer.CompressionFormat.BZ2, "lz4": Ros1Writer.CompressionFormat.LZ4}
        if compression is not None and compression not in formats:
            raise DataError(f"unknown ROS 1 bag compression {compression!r}; choose bz2 or lz4")
        try:
            self._writer = Ros1Writer(self.path)
            if compression is not None:
                self._writer.set_compression(formats[compression])
            self._writer.open()
        except Exception as err:  # rosbags raises WriterError / OSError
            raise DataError(f"cannot create ROS 1 bag {self.path}: {err}") from err
        self._conns: dict[str, Any] = {}

    def _write(self, topic: str, stamp_ns: int, msg: Any, msgtype: str) -> None:
        conn = self._conns.get(topic)
        if conn is None:
            conn = self._conns[topic] = self._writer.add_connection(topic, msgtype, typestore=self.ts)
        self._writer.write(conn, int(stamp_ns), self.ts.serialize_ros1(msg, msgtype))

    def close(self) -> None:
        """Finish the bag (writes the index)."""
        self._writer.close()


class Ros2SequenceWriter(_SequenceBagWriter):
    """Write the same content as a ROS 2 bag (sqlite3 or mcap), streaming.

    Args:
        path: Output bag directory (must not exist).
        K: ``[3, 3]`` camera matrix, pixels.
        size: ``(width, height)`` of the images, pixels.
        storage: ``sqlite3`` or ``mcap``.
    """

    ros2 = True

    def __init__(
        self, path: str | Path, K: np.ndarray, size: tuple[int, int], storage: str = "sqlite3"
    ) -> None:
        super().__init__(K, size)
        self.path = Path(path)
        self.ts = get_typestore(Stores.ROS2_HUMBLE)
        plugin = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}.get(storage)
        if plugin is None:
            raise DataError(f"unknown ROS 2 storage {storage!r}; choose sqlite3 or mcap")
        try:
            self._writer = Ros2Writer(self.path, version=9, storage_plugin=plugin)
            self._writer.open()
        except Exception as err:  # rosbags raises WriterError / OSError
            raise DataError(f"cannot create ROS 2 bag {self.path}: {err}") from err
        self._conns: dict[str, Any] = {}

    def _write(self, topic: str, stamp_ns: int, msg: Any, msgtype: str) -> None:
        conn = self._conns.get(topic)
        if conn is None:
            conn = self._conns[topic] = self._writer.add_connection(topic, msgtype, typestore=self.ts)
        self._writer.write(conn, int(stamp_ns), self.ts.serialize_cdr(msg, msgtype))

    def close(self) -> None:
        """Finish the bag (writes ``metadata.yaml``)."""
        self._writer.close()


# --------------------------------------------------------------------------- reading


def _stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _open_any(path: Path) -> AnyReader:
    try:
        reader = AnyReader([path])
        reader.open()
    except (AnyReaderError, FileNotFoundError, OSError) as err:
        raise DataError(f"cannot open bag {path}: {err}") from err
    except Exception as err:  # rosbags' reader errors carry no common base
        raise DataError(f"cannot open bag {path}: {type(err).__name__}: {err}") from err
    return reader


def _topic_listing(reader: AnyReader) -> str:
    return ", ".join(f"{name} ({info.msgtype})" for name, info in sorted(reader.topics.items())) or "(none)"


def bag_topics(path: str | Path) -> dict[str, str]:
    """``{topic: message type}`` of a ROS 1 or ROS 2 bag."""
    reader = _open_any(Path(path))
    try:
        return {name: str(info.msgtype) for name, info in reader.topics.items()}
    finally:
        reader.close()


def _require_topic(reader: AnyReader, path: Path, topic: str) -> list[Any]:
    conns = [c for c in reader.connections if c.topic == topic]
    if not conns:
        raise TopicNotFoundError(f"{path} has no topic {topic!r}; its topics are: {_topic_listing(reader)}")
    return conns


_OP_MSGDATA = 2
_OP_CONNECTION = 7
_U32 = struct.Struct("<L")


def _record_op(header: bytes) -> int:
    """The ``op`` field of a ROS 1 record header (``len name=value`` fields)."""
    pos = 0
    while pos + 4 <= len(header):
        (n,) = _U32.unpack_from(header, pos)
        field = header[pos + 4 : pos + 4 + n]
        if field.startswith(b"op="):
            return field[3]
        pos += 4 + n
    raise DataError("ROS 1 record header without 'op' field")


def _raw_messages(reader: AnyReader, connections: Sequence[Any]) -> Iterator[tuple[Any, int, bytes]]:
    """``reader.messages(connections)``, but reads only the wanted records of uncompressed ROS 1 chunks.

    rosbags loads a whole chunk for every message it returns from another chunk; in a TUM bag
    small ``/tf`` messages share chunks with megabyte images, so that reads the bag several
    times over. Uncompressed ROS 1 chunks let us seek straight to each record instead (the
    record offsets come from the bag's index). Everything else goes through rosbags.
    """
    owners = {id(c.owner) for c in connections}
    owner = connections[0].owner if connections else None
    fast = (
        not reader.is2
        and len(owners) == 1
        and all(ch.decompressor is _ROS1_NONE for ch in owner.chunks.values())
    )
    if not fast:
        yield from reader.messages(connections=connections)
        return
    bio = owner.bio

    def keyed(k: int, conn: Any) -> Iterator[tuple[int, int, int, int]]:
        for entry in owner.indexes[conn.id]:
            yield entry.time, entry.chunk_pos, entry.offset, k

    streams = [keyed(k, c) for k, c in enumerate(connections)]
    for time_ns, chunk_pos, offset, k in heapq.merge(*streams):
        bio.seek(owner.chunks[chunk_pos].datapos + offset)
        while True:
            (hlen,) = _U32.unpack(bio.read(4))
            op = _record_op(bio.read(hlen))
            (dlen,) = _U32.unpack(bio.read(4))
            if op == _OP_MSGDATA:
                data = bio.read(dlen)
                break
            if op != _OP_CONNECTION:
                raise DataError(
                    f"{owner.path}: expected a message record at chunk {chunk_pos} offset {offset}"
                )
            bio.seek(dlen, os.SEEK_CUR)
        yield connections[k], time_ns, data


def _tf_samples(reader: AnyReader, path: Path) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """All ``(parent, child) -> (stamps_ns[N], T_parent_child[N, 4, 4])`` on ``/tf`` and ``/tf_static``."""
    conns = [
        c for c in reader.connections if c.topic in (TF_TOPIC, TF_STATIC_TOPIC) and c.msgtype in _TF_TYPES
    ]
    if not conns:
        raise TopicNotFoundError(
            f"{path} has no {TF_TOPIC} topic with ground truth; its topics are: {_topic_listing(reader)}"
        )
    raw_edges: dict[tuple[str, str], tuple[list[int], list[tuple[float, ...]]]] = {}
    for conn, _, raw in _raw_messages(reader, conns):
        msg = reader.deserialize(raw, conn.msgtype)
        for tf in msg.transforms:
            tr, q = tf.transform.translation, tf.transform.rotation
            key = (_norm(tf.header.frame_id), _norm(tf.child_frame_id))
            stamps, values = raw_edges.setdefault(key, ([], []))
            stamps.append(_stamp_ns(tf.header))
            values.append((tr.x, tr.y, tr.z, q.x, q.y, q.z, q.w))
    edges = {}
    for key, (stamps, values) in raw_edges.items():
        v = np.asarray(values, dtype=np.float64)
        T = np.tile(np.eye(4), (len(v), 1, 1))
        T[:, :3, :3] = Rotation.from_quat(v[:, 3:]).as_matrix()
        T[:, :3, 3] = v[:, :3]
        edges[key] = (np.asarray(stamps, dtype=np.int64), T)
    return edges


def _trajectory_from_tf(
    edges: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]], world: str, camera: str, path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Compose the chain ``world -> ... -> camera``: exactly one moving edge, the rest static."""
    parent_of = {child: parent for parent, child in edges}
    chain: list[tuple[str, str]] = []
    frame = camera
    while frame != world:
        if frame not in parent_of:
            raise DataError(
                f"{path}: no transform chain from {world!r} to {camera!r} on /tf (stuck at {frame!r}; "
                f"edges: {', '.join(f'{p}->{c}' for p, c in sorted(edges))})"
            )
        chain.append((parent_of[frame], frame))
        frame = parent_of[frame]
        if len(chain) > len(edges):
            raise DataError(f"{path}: the /tf tree has a cycle around {frame!r}")
    chain.reverse()  # world first
    moving = [e for e in chain if not np.allclose(edges[e][1], edges[e][1][:1], rtol=0.0, atol=1e-12)]
    if len(moving) != 1:
        raise DataError(
            f"{path}: expected exactly one moving transform between {world!r} and {camera!r}, "
            f"found {len(moving)}: {moving}"
        )
    before, after = np.eye(4), np.eye(4)
    seen_moving = False
    for e in chain:
        if e == moving[0]:
            seen_moving = True
        elif seen_moving:
            after = after @ edges[e][1][-1]
        else:
            before = before @ edges[e][1][-1]
    stamps = edges[moving[0]][0]
    T = before @ edges[moving[0]][1] @ after
    return stamps, T


def read_bag_trajectory(
    path: str | Path, world_frame: str = TUM_FRAMES["world"], camera_frame: str = TUM_FRAMES["rgb_optical"]
) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth of a TUM-layout bag at its motion-capture stamps.

    Args:
        path: ROS 1 ``.bag``, ROS 2 bag directory or ``.mcap``.
        world_frame: Fixed frame (leading ``/`` optional).
        camera_frame: Frame whose pose is returned.

    Returns:
        ``(stamps_ns[N] int64, T_world_cam[N, 4, 4])``: pose of ``camera_frame`` in
        ``world_frame``, metres, in bag order.

    Raises:
        TopicNotFoundError: No ``/tf``. DataError: no chain, or not exactly one moving edge.
    """
    p = Path(path)
    reader = _open_any(p)
    try:
        return _trajectory_from_tf(_tf_samples(reader, p), _norm(world_frame), _norm(camera_frame), p)
    finally:
        reader.close()


class BagReader(SequenceReader):
    """Stream frames from a TUM-layout ROS 1 or ROS 2 bag (see :func:`open_sequence`).

    Opening reads ``/tf`` (small) once to build the ground truth; :meth:`frames` then streams
    the image (and depth) messages in bag order, decoding one at a time. Depth associates to
    the nearest unused depth image within ``max_dt_s`` through a bounded look-ahead buffer.
    """

    _LOOKAHEAD_NS = 1_000_000_000  # give up waiting for depth after 1 s of stream

    def __init__(
        self,
        path: Path,
        gt_path: Path | None = None,
        *,
        image_topic: str = DEFAULT_IMAGE_TOPIC,
        depth_topic: str = DEFAULT_DEPTH_TOPIC,
        with_depth: bool = False,
        gt_mode: GtMode | str = GtMode.INTERPOLATE,
        max_dt_s: float = 0.02,
        world_frame: str = TUM_FRAMES["world"],
        camera_frame: str | None = None,
    ) -> None:
        super().__init__(path)
        self.gt_path = gt_path
        self.image_topic = image_topic
        self.depth_topic = depth_topic
        self.with_depth = with_depth
        self.gt_mode = GtMode(gt_mode)
        self.max_dt_ns = round(max_dt_s * 1e9)
        self.world_frame = world_frame
        self.camera_frame = camera_frame
        self._reader: AnyReader | None = None
        self._gt: GroundTruth | None = None
        self._K: np.ndarray | None = None
        self._image_conns: list[Any] = []
        self._depth_conns: list[Any] = []

    def open(self) -> None:
        reader = _open_any(self.path)
        try:
            self._image_conns = _require_topic(reader, self.path, self.image_topic)
            if self.with_depth:
                self._depth_conns = _require_topic(reader, self.path, self.depth_topic)
            self._K = self._read_intrinsics(reader)
            self._gt = self._load_gt(reader)
        except BaseException:
            reader.close()
            raise
        self._reader = reader
        super().open()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        super().close()

    @property
    def n_frames(self) -> int | None:
        return sum(c.msgcount for c in self._image_conns) if self._image_conns else None

    @property
    def intrinsics(self) -> np.ndarray | None:
        return self._K

    @property
    def topics(self) -> dict[str, str]:
        """``{topic: message type}`` of the open bag."""
        self._check_open()
        assert self._reader is not None
        return {name: str(info.msgtype) for name, info in self._reader.topics.items()}

    def _info_topic(self) -> str:
        return self.image_topic.rsplit("/", 1)[0] + "/camera_info"

    def _read_intrinsics(self, reader: AnyReader) -> np.ndarray | None:
        conns = [c for c in reader.connections if c.topic == self._info_topic()]
        for conn, _, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            k = getattr(msg, "k", None)
            k = getattr(msg, "K", None) if k is None else k
            return np.asarray(k, dtype=np.float64).reshape(3, 3)
        return None

    def _first_image_frame(self, reader: AnyReader) -> str:
        for conn, _, raw in reader.messages(connections=self._image_conns):
            return str(reader.deserialize(raw, conn.msgtype).header.frame_id)
        raise DataError(f"{self.path}: topic {self.image_topic!r} has no messages")

    def _load_gt(self, reader: AnyReader) -> GroundTruth | None:
        if self.gt_path is not None:
            stamps, T = read_tum_trajectory(self.gt_path)
            source = str(self.gt_path)
        elif any(c.topic == TF_TOPIC for c in reader.connections):
            camera = self.camera_frame or self._first_image_frame(reader)
            edges = _tf_samples(reader, self.path)
            if _norm(self.world_frame) not in {frame for edge in edges for frame in edge}:
                self.warnings.add(
                    "no_ground_truth",
                    f"{self.path}: /tf has no frame {self.world_frame!r}; frames carry no pose "
                    "(pass world_frame=... or a ground-truth file)",
                )
                return None
            stamps, T = _trajectory_from_tf(edges, _norm(self.world_frame), _norm(camera), self.path)
            source = f"{self.path}:{TF_TOPIC}"
        else:
            _log.info("%s: no %s and no ground-truth file; frames carry no pose", self.path, TF_TOPIC)
            return None
        max_dt_s = self.max_dt_ns / 1e9
        return GroundTruth(stamps, T, self.warnings, mode=self.gt_mode, max_dt_s=max_dt_s, source=source)

    def _decode_rgb(self, msg: Any) -> np.ndarray | None:
        try:
            return decode_image_rgb8(
                msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian, msg.data
            )
        except ImageEncodingError as err:
            self.warnings.add("undecodable_images", f"{self.path}: {err}")
            return None

    def _decode_depth(self, msg: Any) -> np.ndarray | None:
        try:
            arr = decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian, msg.data)
        except ImageEncodingError as err:
            self.warnings.add("undecodable_depth", f"{self.path}: {err}")
            return None
        if arr.dtype == np.float32:
            return arr
        if arr.dtype == np.uint16:  # REP 118: 16UC1 depth is millimetres, 0 = missing
            depth = arr.astype(np.float32) / np.float32(1000.0)
            depth[arr == 0] = np.nan
            return depth
        self.warnings.add(
            "undecodable_depth", f"{self.path}: depth encoding {msg.encoding!r} is not 32FC1/16UC1"
        )
        return None

    def frames(self) -> Iterator[Frame]:
        self._check_open()
        assert self._reader is not None
        reader = self._reader
        image_ids = {id(c) for c in self._image_conns}
        pending: deque[tuple[int, Any]] = deque()  # rgb messages waiting for depth
        depths: deque[list[Any]] = deque()  # [stamp, msg, used]
        last_stamp: int | None = None
        latest_depth = -(2**62)
        latest_rgb = -(2**62)
        index = 0

        def emit(stamp: int, msg: Any) -> Frame | None:
            nonlocal index
            image = self._decode_rgb(msg)
            if image is None:
                return None
            depth = None
            if self.with_depth:
                best = None
                for cand in depths:
                    dt = abs(cand[0] - stamp)
                    if not cand[2] and dt < self.max_dt_ns and (best is None or dt < abs(best[0] - stamp)):
                        best = cand
                if best is None:
                    self.warnings.add(
                        "unassociated_depth", f"{self.path}: no depth within max_dt of {stamp} ns"
                    )
                else:
                    best[2] = True
                    depth = self._decode_depth(best[1])
            T = self._gt.lookup(stamp) if self._gt is not None else None
            frame = Frame(stamp_ns=stamp, image=image, depth=depth, T_world_cam=T, index=index)
            index += 1
            return frame

        conns = [*self._image_conns, *self._depth_conns]
        for conn, _, raw in _raw_messages(reader, conns):
            msg = reader.deserialize(raw, conn.msgtype)
            stamp = _stamp_ns(msg.header)
            if id(conn) in image_ids:
                if last_stamp is not None and stamp == last_stamp:
                    self.warnings.add(
                        "duplicate_stamps", f"{self.path}:{self.image_topic}: repeated stamp {stamp} ns"
                    )
                elif last_stamp is not None and stamp < last_stamp:
                    self.warnings.add(
                        "out_of_order_stamps", f"{self.path}:{self.image_topic}: {stamp} ns < {last_stamp} ns"
                    )
                last_stamp = stamp
                latest_rgb = max(latest_rgb, stamp)
                if not self.with_depth:
                    frame = emit(stamp, msg)
                    if frame is not None:
                        yield frame
                    continue
                pending.append((stamp, msg))
            else:
                depths.append([stamp, msg, False])
                latest_depth = max(latest_depth, stamp)
            while pending and (
                latest_depth >= pending[0][0] + self.max_dt_ns
                or latest_rgb - pending[0][0] > self._LOOKAHEAD_NS
            ):
                frame = emit(*pending.popleft())
                if frame is not None:
                    yield frame
            horizon = (pending[0][0] if pending else latest_rgb) - self.max_dt_ns
            while depths and depths[0][0] < horizon:  # can no longer match any pending/future rgb
                depths.popleft()
        while pending:
            frame = emit(*pending.popleft())
            if frame is not None:
                yield frame
