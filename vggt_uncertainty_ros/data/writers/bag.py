"""TUM-layout ROS 1 and ROS 2 bags, written with ``rosbags`` (no ROS install needed).

The topics, types and frames are TUM's (see :mod:`~vggt_uncertainty_ros.data.layout`): images
and camera infos on TUM's topics, the motion-capture pose as ``/world -> /kinect`` on ``/tf``
with the static chain to the optical frames every few messages (tf1 has no ``/tf_static``).
ROS 2 bags (sqlite3 or mcap) use ROS 2 types and frame names without a leading ``/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from rosbags.rosbag1 import Writer as Ros1Writer
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Ros2Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from scipy.spatial.transform import Rotation

from vggt_uncertainty_ros.data.image_codec import encode_image
from vggt_uncertainty_ros.data.layout import (
    DEFAULT_DEPTH_TOPIC,
    DEFAULT_IMAGE_TOPIC,
    DEPTH_INFO_TOPIC,
    RGB_INFO_TOPIC,
    TF_ROS1_TYPE,
    TF_ROS2_TYPE,
    TF_TOPIC,
    TUM_FRAMES,
    body_to_rgb_optical,
    norm_frame,
    tum_static_chain,
)
from vggt_uncertainty_ros.errors import DataError

__all__ = ["RawRos2BagWriter", "Ros1SequenceWriter", "Ros2SequenceWriter"]

_W = TypeVar("_W", bound="_SequenceBagWriter")

#: send the static chain with every n-th motion-capture message (tf1 has no /tf_static)
_STATIC_EVERY = 10
_ROS2_STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}


class _SequenceBagWriter:
    """Shared message building for the ROS 1 / ROS 2 writers (``write_pose/rgb/depth``, ``close``)."""

    ros2: bool = False

    def __init__(self, K: np.ndarray, size: tuple[int, int]) -> None:
        self.K = np.asarray(K, dtype=np.float64)
        self.width, self.height = int(size[0]), int(size[1])
        self._T_body_cam = body_to_rgb_optical()
        self._T_cam_body = np.linalg.inv(self._T_body_cam)
        self._n_pose = 0
        self._seq: dict[str, int] = {}
        self._static = tum_static_chain()

    # subclasses provide: self.ts (typestore), self._conn(topic), self._write(topic, stamp, msg)
    ts: Any

    def _name(self, frame: str) -> str:
        return norm_frame(frame) if self.ros2 else frame

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
                translation=types["geometry_msgs/msg/Vector3"](x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
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
        tf_type = TF_ROS2_TYPE if self.ros2 else TF_ROS1_TYPE
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
            roi=types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
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
        image = self._image(DEFAULT_DEPTH_TOPIC, stamp_ns, frame, np.asarray(depth_m, dtype=np.float32), "32FC1")
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

    def __init__(self, path: str | Path, K: np.ndarray, size: tuple[int, int], compression: str | None = None) -> None:
        super().__init__(K, size)
        self.path = Path(path)
        self.ts = get_typestore(Stores.ROS1_NOETIC)
        self.ts.register(get_types_from_msg("geometry_msgs/TransformStamped[] transforms", TF_ROS1_TYPE))
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

    def __init__(self, path: str | Path, K: np.ndarray, size: tuple[int, int], storage: str = "sqlite3") -> None:
        super().__init__(K, size)
        self.path = Path(path)
        self.ts = get_typestore(Stores.ROS2_HUMBLE)
        plugin = _ROS2_STORAGES.get(storage)
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


class RawRos2BagWriter:
    """A ROS 2 bag of messages that are already CDR bytes (e.g. what an rclpy subscription received).

    Connections are added on first use of a topic; the message definitions stored with them
    come from ``rosbags``' ROS 2 Kilted type store.

    Args:
        path: Output bag directory (must not exist).
        storage: ``sqlite3`` or ``mcap``.

    Raises:
        DataError: The bag cannot be created or written, or a topic changes its type.
    """

    def __init__(self, path: str | Path, storage: str = "sqlite3") -> None:
        self.path = Path(path)
        plugin = _ROS2_STORAGES.get(storage)
        if plugin is None:
            raise DataError(f"unknown ROS 2 storage {storage!r}; choose sqlite3 or mcap")
        self.ts = get_typestore(Stores.ROS2_KILTED)
        try:
            self._writer = Ros2Writer(self.path, version=9, storage_plugin=plugin)
            self._writer.open()
        except Exception as err:  # rosbags raises WriterError / OSError
            raise DataError(f"cannot create ROS 2 bag {self.path}: {err}") from err
        self._conns: dict[str, tuple[str, Any]] = {}

    def __enter__(self) -> RawRos2BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Declare ``topic`` (so it is listed in the bag even without messages); idempotent."""
        known = self._conns.get(topic)
        if known is not None:
            if known[0] != msgtype:
                raise DataError(f"{self.path}: topic {topic!r} already holds {known[0]}, not {msgtype}")
            return
        try:
            self._conns[topic] = (msgtype, self._writer.add_connection(topic, msgtype, typestore=self.ts))
        except Exception as err:  # rosbags' WriterError, a type the store does not know
            raise DataError(f"cannot add topic {topic!r} ({msgtype}) to {self.path}: {err}") from err

    def write(self, topic: str, msgtype: str, log_time_ns: int, cdr: bytes) -> None:
        """Append one message (declaring its topic on first use).

        Args:
            topic: Topic name.
            msgtype: ROS 2 type name, e.g. ``geometry_msgs/msg/PoseWithCovarianceStamped``.
            log_time_ns: Bag (receive) time, integer nanoseconds.
            cdr: The serialised message.
        """
        self.add_topic(topic, msgtype)
        try:
            self._writer.write(self._conns[topic][1], int(log_time_ns), cdr)
        except Exception as err:  # rosbags' WriterError, sqlite3/OS errors
            raise DataError(f"cannot write {topic!r} ({msgtype}) to {self.path}: {err}") from err

    def close(self) -> None:
        """Finish the bag (writes ``metadata.yaml``)."""
        self._writer.close()
