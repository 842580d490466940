"""Replay a bag's image topic over DDS and record topics into a ROS 2 bag.

This is what ``ros2 bag play`` + ``ros2 bag record`` do on a ROS install; pip users have
neither (ros2cli is not on PyPI), so the demo and the tests use this module instead. Bags
are read and written through the data layer (:class:`~vggt_uncertainty_ros.data.BagFile`,
:class:`~vggt_uncertainty_ros.data.RawRos2BagWriter`, both over ``rosbags``); messages travel
through real rclpy publishers and subscriptions.

* Images from a ROS 2 bag are published as their stored CDR bytes (no re-encoding); images
  from a ROS 1 bag are deserialised with ``rosbags`` and rebuilt as ``sensor_msgs/Image``.
* Companion topics (``camera_info``) travel with the images, in recorded order: stored CDR from a
  ROS 2 bag, rebuilt ``sensor_msgs/CameraInfo`` from a ROS 1 bag.
* Recorded messages are written as the serialized CDR that rclpy received, with the
  receive time (ns) as the bag timestamp, so a recording is byte-exact.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from vggt_uncertainty_ros.data import BagFile, RawRos2BagWriter
from vggt_uncertainty_ros.errors import DataError

_log = logging.getLogger(__name__)

#: QoS of the replayed image stream: reliable so no test or demo depends on luck.
RELIABLE_IMAGES = QoSProfile(
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
    history=HistoryPolicy.KEEP_LAST,
    depth=50,
)


@dataclass
class ReplayStats:
    """What a replay did: counts of published images and companion messages, and of recorded messages per topic."""

    images_published: int = 0
    companions_published: int = 0
    recorded: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0


class _Recorder:
    """Subscribes to topics (raw CDR) and writes every message to a ROS 2 bag on close.

    Messages are buffered in memory (pose messages are a few hundred bytes) and written
    by the thread that calls :meth:`close`: the sqlite3 storage may only be used from the
    thread that opened it, and the callbacks run on the executor's thread.
    """

    def __init__(self, node: Node, out_bag: Path, topics: dict[str, type]) -> None:
        self._out_bag = out_bag
        self._lock = threading.Lock()
        self._messages: list[tuple[str, int, bytes]] = []
        self._types = {topic: _ros_type_name(msg_type) for topic, msg_type in topics.items()}
        self.counts: dict[str, int] = dict.fromkeys(topics, 0)
        qos = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_ALL, depth=1000)
        self._subs = [
            node.create_subscription(msg_type, topic, self._callback(topic), qos, raw=True)
            for topic, msg_type in topics.items()
        ]

    def _callback(self, topic: str):
        def on_message(data: bytes) -> None:
            with self._lock:
                self._messages.append((topic, time.time_ns(), bytes(data)))
                self.counts[topic] += 1

        return on_message

    def close(self) -> None:
        """Write the recorded messages, in arrival order, to the output bag."""
        with RawRos2BagWriter(self._out_bag, storage="sqlite3") as writer, self._lock:
            for topic, msgtype in self._types.items():
                writer.add_topic(topic, msgtype)
            for topic, t_ns, data in self._messages:
                writer.write(topic, self._types[topic], t_ns, data)


def _companion_publisher(node: Node, reader: BagFile, topic: str) -> tuple[Any, Callable[[Any], Any] | None]:
    """Publisher of a companion topic, and how a ROS 1 message is rebuilt (None: publish the stored CDR)."""
    reader.require_topic(topic)
    types = reader.msgtypes(topic)
    if len(types) != 1:
        raise DataError(f"{reader.path}: companion topic {topic} has several types {sorted(types)}")
    (msgtype,) = types
    if reader.is_ros2:
        return node.create_publisher(message_class(msgtype), topic, RELIABLE_IMAGES), None
    if msgtype not in _REBUILD:
        raise DataError(f"{reader.path}: cannot republish {msgtype} from a ROS 1 bag (supported: {sorted(_REBUILD)})")
    cls, rebuild = _REBUILD[msgtype]
    return node.create_publisher(cls, topic, RELIABLE_IMAGES), rebuild


def message_class(type_name: str) -> type:
    """``"geometry_msgs/msg/PoseWithCovarianceStamped"`` -> the rclpy message class."""
    package, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


def _ros_type_name(msg_type: type) -> str:
    """``geometry_msgs.msg.PoseWithCovarianceStamped`` -> ``geometry_msgs/msg/PoseWithCovarianceStamped``."""
    package = msg_type.__module__.split(".")[0]
    return f"{package}/msg/{msg_type.__name__}"


def _rebuilt(cls: type, msg) -> Any:
    """A new ``cls`` message with the header and image size of a rosbags message."""
    out = cls()
    out.header.stamp.sec = int(msg.header.stamp.sec)
    out.header.stamp.nanosec = int(msg.header.stamp.nanosec)
    out.header.frame_id = str(msg.header.frame_id)
    out.height, out.width = int(msg.height), int(msg.width)
    return out


def _image_from_rosbags(msg) -> Image:
    out = _rebuilt(Image, msg)
    out.encoding = str(msg.encoding)
    out.is_bigendian = int(msg.is_bigendian)
    out.step = int(msg.step)
    out.data = bytes(msg.data)
    return out


def _camera_info_from_rosbags(msg) -> CameraInfo:
    """A ROS 1 ``sensor_msgs/CameraInfo`` (rosbags object, upper-case matrix names) as the ROS 2 message."""
    out = _rebuilt(CameraInfo, msg)
    out.distortion_model = str(msg.distortion_model)
    out.d = [float(v) for v in msg.D]
    out.k = [float(v) for v in msg.K]
    out.r = [float(v) for v in msg.R]
    out.p = [float(v) for v in msg.P]
    out.binning_x, out.binning_y = int(msg.binning_x), int(msg.binning_y)
    roi = msg.roi
    out.roi.x_offset, out.roi.y_offset = int(roi.x_offset), int(roi.y_offset)
    out.roi.height, out.roi.width, out.roi.do_rectify = int(roi.height), int(roi.width), bool(roi.do_rectify)
    return out


_REBUILD = {
    "sensor_msgs/msg/Image": (Image, _image_from_rosbags),
    "sensor_msgs/msg/CameraInfo": (CameraInfo, _camera_info_from_rosbags),
}


def replay_and_record(
    bag: Path,
    image_topic: str,
    *,
    publish_topic: str | None = None,
    companions: tuple[str, ...] = (),
    record: dict[str, type | str] | None = None,
    out_bag: Path | None = None,
    rate: float = 1.0,
    wait_for_subscribers_s: float = 30.0,
    settle_s: float = 5.0,
    until_recorded: dict[str, int] | None = None,
    node_name: str = "vggt_bag_replay",
    progress=None,
) -> ReplayStats:
    """Publish ``image_topic`` of ``bag`` at its recorded rate and record ``record`` topics.

    Args:
        bag: ROS 1 ``.bag`` or ROS 2 bag directory/file holding ``sensor_msgs/Image`` messages.
        image_topic: the topic to replay from the bag.
        publish_topic: topic to publish on (default: the same name).
        companions: more topics of the bag to publish under their own names, in recorded order
            with the images (``sensor_msgs/CameraInfo``, or any type from a ROS 2 bag), e.g.
            ``("/camera/rgb/camera_info",)``.
        record: ``{topic: message class or type name}`` to record into ``out_bag`` (ROS 2,
            sqlite3), e.g. ``{"/pose": "geometry_msgs/msg/PoseWithCovarianceStamped"}``.
        out_bag: the bag to write; must not exist.
        rate: playback speed factor (1.0 = recorded rate).
        wait_for_subscribers_s: how long to wait for a subscriber before publishing.
        settle_s: how long to keep recording after the last image (the consumer may lag).
        until_recorded: stop settling early once each topic has at least this many messages.
        node_name: name of the replay node.
        progress: optional callable ``progress(n_published)``.

    Returns:
        Counts of what was published and recorded.

    Raises:
        TopicNotFoundError: if ``image_topic`` or a companion is not in ``bag``.
        DataError: the bag cannot be read (names the file and the failing message).
    """
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    record = {topic: message_class(t) if isinstance(t, str) else t for topic, t in (record or {}).items()}
    owns_context = not rclpy.ok()
    if owns_context:
        rclpy.init()
    node = rclpy.create_node(node_name)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    recorder = _Recorder(node, Path(out_bag), record) if record else None
    publisher = node.create_publisher(Image, publish_topic or image_topic, RELIABLE_IMAGES)
    others: dict[str, tuple[Any, Callable[[Any], Any] | None]] = {}  # topic -> (publisher, ROS 1 rebuild)
    spinning = threading.Event()
    spinning.set()

    def spin() -> None:
        while spinning.is_set():
            executor.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin, name="replay-executor", daemon=True)
    spinner.start()
    stats = ReplayStats()
    start = time.monotonic()
    try:
        deadline = time.monotonic() + wait_for_subscribers_s
        while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        if publisher.get_subscription_count() == 0:
            _log.warning(
                "no subscriber on %s after %.0f s; publishing anyway", publisher.topic_name, wait_for_subscribers_s
            )
        if recorder is not None:  # let the recorder's subscriptions match their publishers
            time.sleep(0.5)
        with BagFile(bag) as reader:
            reader.require_topic(image_topic)
            raw_cdr = reader.is_ros2 and reader.msgtypes(image_topic) == {"sensor_msgs/msg/Image"}
            for topic in companions:
                others[topic] = _companion_publisher(node, reader, topic)
            t_first_bag: int | None = None
            t_first_wall = 0.0
            for message in reader.messages([image_topic, *companions]):
                t_ns = message.log_time_ns
                if t_first_bag is None:
                    t_first_bag, t_first_wall = t_ns, time.monotonic()
                due = t_first_wall + (t_ns - t_first_bag) * 1e-9 / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if message.topic in others:
                    pub, rebuild = others[message.topic]
                    pub.publish(bytes(message.raw) if rebuild is None else rebuild(reader.deserialize(message)))
                    stats.companions_published += 1
                    continue
                publisher.publish(bytes(message.raw) if raw_cdr else _image_from_rosbags(reader.deserialize(message)))
                stats.images_published += 1
                if progress is not None:
                    progress(stats.images_published)
        settle_end = time.monotonic() + settle_s
        while time.monotonic() < settle_end:
            if (
                recorder is not None
                and until_recorded
                and all(recorder.counts.get(t, 0) >= n for t, n in until_recorded.items())
            ):
                break
            time.sleep(0.05)
    finally:
        spinning.clear()
        spinner.join(timeout=2.0)
        if recorder is not None:
            recorder.close()
            stats.recorded = dict(recorder.counts)
        executor.remove_node(node)
        node.destroy_node()
        if owns_context:
            rclpy.try_shutdown()
    stats.duration_s = time.monotonic() - start
    return stats
