"""ROS 1 and ROS 2 bags read through ``rosbags``' ``AnyReader`` (no ROS install needed).

* :class:`BagFile`: the one way the package opens a bag (ROS 1 ``.bag``, ROS 2 directory,
  ``.mcap`` or ``.db3``). It streams raw messages in bag order with their index and
  deserialises them; every reader failure (``AnyReaderError``, a corrupt record, a truncated
  file, a message that does not deserialise) becomes a
  :class:`~vggt_uncertainty_ros.errors.DataError` naming the file and, once messages are
  being read, the index of the failing message.
* :class:`BagReader`: a TUM-layout bag as a :class:`~vggt_uncertainty_ros.data.readers.base.SequenceReader`
  (see :mod:`~vggt_uncertainty_ros.data.layout` for the topics and frames).

Ground truth is ``T_world_cam = T_world_kinect(t) @ T_kinect_rgb_optical`` (the chain from the
world frame to the image's ``header.frame_id`` on ``/tf``), sampled at the motion-capture
stamps and looked up at image stamps by :class:`~vggt_uncertainty_ros.data.groundtruth.GroundTruth`.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore
from scipy.spatial.transform import Rotation

from vggt_uncertainty_ros.data.groundtruth import GroundTruth, GtMode
from vggt_uncertainty_ros.data.image_codec import decode_image, decode_image_rgb8
from vggt_uncertainty_ros.data.layout import (
    DEFAULT_DEPTH_TOPIC,
    DEFAULT_IMAGE_TOPIC,
    TF_STATIC_TOPIC,
    TF_TOPIC,
    TF_TYPES,
    TUM_FRAMES,
    norm_frame,
)
from vggt_uncertainty_ros.data.readers.base import SequenceReader
from vggt_uncertainty_ros.data.tum import read_tum_trajectory
from vggt_uncertainty_ros.data.types import Frame
from vggt_uncertainty_ros.errors import (
    DataError,
    ImageEncodingError,
    TopicNotFoundError,
    VggtUncertaintyError,
)

__all__ = ["BagFile", "BagMessage", "BagReader", "bag_topics", "is_bag_path", "read_bag_trajectory"]

_log = logging.getLogger(__name__)

#: ROS 2 storage files that may be opened on their own or inside their bag directory.
_ROS2_FILE_SUFFIXES = (".mcap", ".db3")


def is_bag_path(path: Path) -> bool:
    """Whether ``path`` looks like a bag: a ``.bag`` file, a ROS 2 bag directory, an ``.mcap``/``.db3`` file."""
    if path.is_file():
        return path.suffix == ".bag" or path.suffix in _ROS2_FILE_SUFFIXES
    return path.is_dir() and (path / "metadata.yaml").is_file()


def _describe(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


@dataclass(frozen=True, slots=True)
class BagMessage:
    """One stored message of a bag, not yet deserialised.

    Attributes:
        topic: Topic name.
        msgtype: ROS 2 style type name (``sensor_msgs/msg/Image``), also for ROS 1 bags.
        log_time_ns: Bag (receive) time, integer nanoseconds.
        raw: Serialised bytes as stored (ROS 1 serialisation or CDR).
        index: 0-based position among the messages of the :meth:`BagFile.messages` pass.
    """

    topic: str
    msgtype: str
    log_time_ns: int
    raw: Any
    index: int


class BagFile:
    """An open ROS 1 or ROS 2 bag (context manager), one class over ``rosbags``' ``AnyReader``.

    ROS 2 bags that carry no message definitions are deserialised with the ROS 2 Humble
    type store. An ``.mcap``/``.db3`` file inside a bag directory opens the whole bag.

    Args:
        path: ROS 1 ``.bag``, ROS 2 bag directory, ``.mcap`` or ``.db3`` file.

    Raises:
        DataError: From :meth:`open`, :meth:`messages` and :meth:`deserialize` when the bag
            cannot be read; the message names the file and, while reading messages, the index
            of the failing one. :class:`~vggt_uncertainty_ros.errors.TopicNotFoundError` from
            :meth:`require_topic`.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        parent = self.path.parent
        inside_bag_dir = self.path.suffix in _ROS2_FILE_SUFFIXES and (parent / "metadata.yaml").is_file()
        self._source = parent if inside_bag_dir else self.path
        self._reader: AnyReader | None = None

    def __enter__(self) -> BagFile:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def open(self) -> None:
        """Open the bag and read its index (no message is read yet)."""
        if not self.path.exists():
            raise DataError(f"bag {self.path} does not exist")
        try:
            reader = AnyReader([self._source], default_typestore=get_typestore(Stores.ROS2_HUMBLE))
            reader.open()
        except Exception as err:  # AnyReaderError, OSError, sqlite3/mcap/struct errors: no common base
            raise DataError(f"cannot open bag {self.path}: {_describe(err)}") from err
        self._reader = reader

    def close(self) -> None:
        """Release the bag's files (safe to call twice)."""
        if self._reader is not None:
            reader, self._reader = self._reader, None
            try:
                reader.close()
            except Exception as err:  # closing a half-broken storage must not hide the first error
                _log.debug("%s: error while closing: %s", self.path, _describe(err))

    def _open_reader(self) -> AnyReader:
        if self._reader is None:
            raise DataError(f"{self.path}: bag used before open(); use 'with BagFile(...) as bag'")
        return self._reader

    @property
    def is_ros2(self) -> bool:
        """True for a ROS 2 bag (CDR messages), False for a ROS 1 bag."""
        return bool(self._open_reader().is2)

    @property
    def topics(self) -> dict[str, str]:
        """``{topic: message type}`` (ROS 2 style names, e.g. ``sensor_msgs/msg/Image``)."""
        return {name: str(info.msgtype) for name, info in self._open_reader().topics.items()}

    def topic_listing(self) -> str:
        """``"topic (type), ..."`` of the bag, for error messages."""
        return ", ".join(f"{name} ({msgtype})" for name, msgtype in sorted(self.topics.items())) or "(none)"

    def message_count(self, topic: str) -> int:
        """Number of messages on ``topic`` from the bag's index (0 if absent)."""
        return sum(c.msgcount for c in self._open_reader().connections if c.topic == topic)

    def msgtypes(self, topic: str) -> set[str]:
        """The message types stored on ``topic`` (empty if absent)."""
        return {str(c.msgtype) for c in self._open_reader().connections if c.topic == topic}

    def require_topic(self, topic: str) -> None:
        """Raise :class:`TopicNotFoundError` (listing the bag's topics) unless ``topic`` is present."""
        if not self.msgtypes(topic):
            raise TopicNotFoundError(f"{self.path} has no topic {topic!r}; its topics are: {self.topic_listing()}")

    def messages(self, topics: Iterable[str], msgtypes: Iterable[str] | None = None) -> Iterator[BagMessage]:
        """Stream the messages of ``topics`` in bag (log-time) order, raw.

        Args:
            topics: Topic names to read (absent ones are skipped).
            msgtypes: If given, only connections of these types are read.

        Raises:
            DataError: A record cannot be read (corrupt or truncated bag); names the message index.
        """
        reader = self._open_reader()
        wanted = set(topics)
        types = None if msgtypes is None else set(msgtypes)
        conns = [c for c in reader.connections if c.topic in wanted and (types is None or c.msgtype in types)]
        if not conns:
            return
        stream = reader.messages(connections=conns)
        index = 0
        try:
            while True:
                try:
                    conn, log_time_ns, raw = next(stream)
                except StopIteration:
                    return
                except VggtUncertaintyError:
                    raise
                except Exception as err:  # rosbags' reader errors, struct/zlib/lz4/sqlite3/mcap errors
                    raise DataError(
                        f"{self.path}: cannot read message {index} (0-based, of topics {sorted(wanted)}): "
                        f"{_describe(err)}"
                    ) from err
                yield BagMessage(conn.topic, str(conn.msgtype), int(log_time_ns), raw, index)
                index += 1
        finally:
            stream.close()

    def deserialize(self, message: BagMessage) -> Any:
        """The message object of ``message`` (``rosbags`` types; ROS 1 field names for ROS 1 bags).

        Raises:
            DataError: The bytes do not deserialise as ``message.msgtype``; names the message index.
        """
        reader = self._open_reader()
        try:
            return reader.deserialize(message.raw, message.msgtype)
        except Exception as err:  # AnyReaderError (SerdeError), struct.error, IndexError on corrupt bytes
            raise DataError(
                f"{self.path}: cannot deserialise message {message.index} on {message.topic} "
                f"({message.msgtype}): {_describe(err)}"
            ) from err

    def read(self, topics: Iterable[str], msgtypes: Iterable[str] | None = None) -> Iterator[tuple[BagMessage, Any]]:
        """:meth:`messages`, each with its deserialised object."""
        for message in self.messages(topics, msgtypes):
            yield message, self.deserialize(message)


def bag_topics(path: str | Path) -> dict[str, str]:
    """``{topic: message type}`` of a ROS 1 or ROS 2 bag."""
    with BagFile(path) as bag:
        return bag.topics


def _stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _tf_samples(bag: BagFile) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """All ``(parent, child) -> (stamps_ns[N], T_parent_child[N, 4, 4])`` on ``/tf`` and ``/tf_static``."""
    tf_topics = (TF_TOPIC, TF_STATIC_TOPIC)
    if not any(bag.msgtypes(topic) & TF_TYPES for topic in tf_topics):
        raise TopicNotFoundError(
            f"{bag.path} has no {TF_TOPIC} topic with ground truth; its topics are: {bag.topic_listing()}"
        )
    raw_edges: dict[tuple[str, str], tuple[list[int], list[tuple[float, ...]]]] = {}
    for _, msg in bag.read(tf_topics, TF_TYPES):
        for tf in msg.transforms:
            tr, q = tf.transform.translation, tf.transform.rotation
            key = (norm_frame(tf.header.frame_id), norm_frame(tf.child_frame_id))
            stamps, values = raw_edges.setdefault(key, ([], []))
            stamps.append(_stamp_ns(tf.header))
            values.append((tr.x, tr.y, tr.z, q.x, q.y, q.z, q.w))
    edges = {}
    for key, (stamps, values) in raw_edges.items():
        v = np.asarray(values, dtype=np.float64)
        bad = ~np.all(np.isfinite(v), axis=1) | (np.linalg.norm(v[:, 3:], axis=1) < 1e-12)
        if bad.any():
            raise DataError(
                f"{bag.path}: {int(bad.sum())} transform(s) {key[0]} -> {key[1]} on /tf have non-finite "
                "values or a zero quaternion"
            )
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
    with BagFile(path) as bag:
        return _trajectory_from_tf(_tf_samples(bag), norm_frame(world_frame), norm_frame(camera_frame), bag.path)


class BagReader(SequenceReader):
    """Stream frames from a TUM-layout ROS 1 or ROS 2 bag (see :func:`open_sequence`).

    Opening reads ``/tf`` once to build the ground truth (in a ROS 1 bag that loads every
    chunk, since rosbags reads whole chunks and ``/tf`` shares them with the images);
    :meth:`frames` then streams the image (and depth) messages in bag order, decoding one at a
    time. Depth associates to the nearest unused depth image within ``max_dt_s`` through a
    bounded look-ahead buffer. Read failures raise ``DataError`` (see :class:`BagFile`).
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
        self._bag: BagFile | None = None
        self._gt: GroundTruth | None = None
        self._K: np.ndarray | None = None
        self._n_frames: int | None = None

    def open(self) -> None:
        bag = BagFile(self.path)
        bag.open()
        try:
            bag.require_topic(self.image_topic)
            if self.with_depth:
                bag.require_topic(self.depth_topic)
            self._n_frames = bag.message_count(self.image_topic)
            self._K = self._read_intrinsics(bag)
            self._gt = self._load_gt(bag)
        except BaseException:
            bag.close()
            raise
        self._bag = bag
        super().open()

    def close(self) -> None:
        if self._bag is not None:
            self._bag.close()
            self._bag = None
        super().close()

    @property
    def n_frames(self) -> int | None:
        return self._n_frames

    @property
    def intrinsics(self) -> np.ndarray | None:
        return self._K

    @property
    def topics(self) -> dict[str, str]:
        """``{topic: message type}`` of the open bag."""
        self._check_open()
        assert self._bag is not None
        return self._bag.topics

    def _info_topic(self) -> str:
        return self.image_topic.rsplit("/", 1)[0] + "/camera_info"

    def _read_intrinsics(self, bag: BagFile) -> np.ndarray | None:
        for _, msg in bag.read([self._info_topic()]):
            k = getattr(msg, "k", None)
            k = getattr(msg, "K", None) if k is None else k
            return np.asarray(k, dtype=np.float64).reshape(3, 3)
        return None

    def _first_image_frame(self, bag: BagFile) -> str:
        for _, msg in bag.read([self.image_topic]):
            return str(msg.header.frame_id)
        raise DataError(f"{self.path}: topic {self.image_topic!r} has no messages")

    def _load_gt(self, bag: BagFile) -> GroundTruth | None:
        if self.gt_path is not None:
            stamps, T = read_tum_trajectory(self.gt_path)
            source = str(self.gt_path)
        elif bag.msgtypes(TF_TOPIC):
            camera = self.camera_frame or self._first_image_frame(bag)
            edges = _tf_samples(bag)
            if norm_frame(self.world_frame) not in {frame for edge in edges for frame in edge}:
                self.warnings.add(
                    "no_ground_truth",
                    f"{self.path}: /tf has no frame {self.world_frame!r}; frames carry no pose "
                    "(pass world_frame=... or a ground-truth file)",
                )
                return None
            stamps, T = _trajectory_from_tf(edges, norm_frame(self.world_frame), norm_frame(camera), self.path)
            source = f"{self.path}:{TF_TOPIC}"
        else:
            _log.info("%s: no %s and no ground-truth file; frames carry no pose", self.path, TF_TOPIC)
            return None
        max_dt_s = self.max_dt_ns / 1e9
        return GroundTruth(stamps, T, self.warnings, mode=self.gt_mode, max_dt_s=max_dt_s, source=source)

    def _decode_rgb(self, msg: Any) -> np.ndarray | None:
        try:
            return decode_image_rgb8(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian, msg.data)
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
        self.warnings.add("undecodable_depth", f"{self.path}: depth encoding {msg.encoding!r} is not 32FC1/16UC1")
        return None

    def frames(self) -> Iterator[Frame]:
        self._check_open()
        assert self._bag is not None
        bag = self._bag
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
                    self.warnings.add("unassociated_depth", f"{self.path}: no depth within max_dt of {stamp} ns")
                else:
                    best[2] = True
                    depth = self._decode_depth(best[1])
            T = self._gt.lookup(stamp) if self._gt is not None else None
            frame = Frame(stamp_ns=stamp, image=image, depth=depth, T_world_cam=T, index=index)
            index += 1
            return frame

        topics = [self.image_topic, *([self.depth_topic] if self.with_depth else [])]
        for message, msg in bag.read(topics):
            stamp = _stamp_ns(msg.header)
            if message.topic == self.image_topic:
                if last_stamp is not None and stamp == last_stamp:
                    self.warnings.add("duplicate_stamps", f"{self.path}:{self.image_topic}: repeated stamp {stamp} ns")
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
                latest_depth >= pending[0][0] + self.max_dt_ns or latest_rgb - pending[0][0] > self._LOOKAHEAD_NS
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
