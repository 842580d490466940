"""Bad bag files end in a DataError that names the file (and the message), never in a rosbags traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from vggt_uncertainty_ros.data import BagFile, BagMessage, RawRos2BagWriter, open_sequence, read_bag_trajectory, synth
from vggt_uncertainty_ros.data.writers import Ros1SequenceWriter
from vggt_uncertainty_ros.errors import DataError, TopicNotFoundError

K = np.array([[20.0, 0, 7.5], [0, 20.0, 5.5], [0, 0, 1]])
W, H = 16, 12
IMAGE_TOPIC = "/camera/rgb/image_color"
#: start of a ROS 1 message-data record header: field length 4, "op=", op code 2 (MSGDATA)
MSGDATA_OP = b"\x04\x00\x00\x00op=\x02"


@pytest.fixture(scope="module")
def bags(tmp_path_factory: pytest.TempPathFactory) -> synth.SynthResult:
    out = tmp_path_factory.mktemp("bad_bags")
    return synth.generate(out, 5, 6, formats=("ros1", "ros2", "ros2-mcap"), width=W, height=H)


def _read_all(path: Path) -> int:
    with open_sequence(path, with_depth=True) as reader:
        return sum(1 for _ in reader.frames())


def _ros1_images_only(path: Path, n: int) -> None:
    """A ROS 1 bag holding ``n`` (camera_info, image) pairs in one uncompressed chunk, nothing else."""
    with Ros1SequenceWriter(path, K, (W, H)) as writer:
        for k in range(n):
            writer.write_rgb(1_000_000_000 + k * 33_000_000, np.full((H, W, 3), 10 * k, np.uint8))


def test_corrupt_ros1_record_names_the_file_and_the_message(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.bag"
    _ros1_images_only(path, 6)
    raw = bytearray(path.read_bytes())
    records = [i for i in range(len(raw)) if raw.startswith(MSGDATA_OP, i)]
    assert len(records) == 12  # info 0, image 0, info 1, image 1, ...
    raw[records[2 * 3 + 1] + len(MSGDATA_OP) - 1] = 0x05  # image 3 now claims to be a chunk record
    path.write_bytes(bytes(raw))

    stamps = []
    with open_sequence(path) as reader:  # the index is intact: opening works
        frames = reader.frames()
        with pytest.raises(DataError, match=r"corrupt\.bag: cannot read message 3 \(.*/camera/rgb/image_color") as err:
            for frame in frames:
                stamps.append(frame.stamp_ns)
    assert len(stamps) == 3  # the three good images before it were delivered
    assert "Expected to find message data" in str(err.value)


def test_ros1_garbage_and_truncated_bags_fail_on_open(bags: synth.SynthResult, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.bag"
    garbage.write_bytes(b"#ROSBAG V2.0\n" + bytes(range(256)) * 8)
    with pytest.raises(DataError, match=r"cannot open bag .*garbage\.bag"):
        _read_all(garbage)
    data = bags.paths["ros1"].read_bytes()
    truncated = tmp_path / "truncated.bag"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cannot open bag .*truncated\.bag"):
        _read_all(truncated)
    with pytest.raises(DataError, match=r"cannot open bag .*truncated\.bag"):
        BagFile(truncated).open()


@pytest.mark.parametrize("key", ["ros2", "ros2-mcap"])
def test_truncated_ros2_bag_is_a_data_error(bags: synth.SynthResult, tmp_path: Path, key: str) -> None:
    assert _read_all(bags.paths[key]) == 6  # the intact bag reads
    bag_dir = tmp_path / f"truncated_{key}"
    shutil.copytree(bags.paths[key], bag_dir)
    storage = next(p for p in bag_dir.iterdir() if p.suffix in (".db3", ".mcap"))
    data = storage.read_bytes()
    storage.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=f"truncated_{key}"):
        _read_all(bag_dir)
    with pytest.raises(DataError, match=storage.name):  # the storage file alone: same bag, same error
        _read_all(storage)


def test_message_that_does_not_deserialise_names_its_index(bags: synth.SynthResult) -> None:
    with BagFile(bags.paths["ros2"]) as bag:
        good = next(bag.messages([IMAGE_TOPIC]))
        assert good.index == 0 and good.topic == IMAGE_TOPIC and good.msgtype == "sensor_msgs/msg/Image"
        assert bag.deserialize(good).width == W
        bad = BagMessage(IMAGE_TOPIC, "sensor_msgs/msg/Image", good.log_time_ns, b"\x00\x01\x00\x00\x07", 5)
        with pytest.raises(DataError, match=r"synth_ros2: cannot deserialise message 5 on /camera/rgb/image_color"):
            bag.deserialize(bad)


def test_bag_file_streams_in_order_and_lists_topics(bags: synth.SynthResult) -> None:
    for key in ("ros1", "ros2", "ros2-mcap"):
        with BagFile(bags.paths[key]) as bag:
            assert bag.is_ros2 == (key != "ros1")
            assert bag.message_count(IMAGE_TOPIC) == 6 and bag.message_count("/nope") == 0
            messages = list(bag.messages([IMAGE_TOPIC, "/camera/depth/image"]))
            assert [m.index for m in messages] == list(range(12))
            assert [m.log_time_ns for m in messages] == sorted(m.log_time_ns for m in messages)
            with pytest.raises(TopicNotFoundError, match=r"no topic '/nope'.*/tf \("):
                bag.require_topic("/nope")
    with pytest.raises(DataError, match="before open"):
        BagFile(bags.paths["ros1"]).topics  # noqa: B018 - the property access is the test
    with pytest.raises(DataError, match="does not exist"):
        BagFile(bags.paths["ros1"].with_name("missing.bag")).open()


def test_zero_quaternion_on_tf_is_a_data_error(tmp_path: Path) -> None:
    ts = get_typestore(Stores.ROS2_HUMBLE)
    t = ts.types

    def tf(w: float) -> bytes:
        transform = t["geometry_msgs/msg/TransformStamped"](
            header=t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="world"),
            child_frame_id="cam",
            transform=t["geometry_msgs/msg/Transform"](
                translation=t["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0),
                rotation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=w),
            ),
        )
        return ts.serialize_cdr(t["tf2_msgs/msg/TFMessage"](transforms=[transform]), "tf2_msgs/msg/TFMessage")

    path = tmp_path / "zero_quat"
    with RawRos2BagWriter(path) as writer:
        writer.write("/tf", "tf2_msgs/msg/TFMessage", 1, tf(1.0))
        writer.write("/tf", "tf2_msgs/msg/TFMessage", 2, tf(0.0))
    with pytest.raises(DataError, match=r"zero_quat: 1 transform\(s\) world -> cam on /tf have non-finite"):
        read_bag_trajectory(path, world_frame="world", camera_frame="cam")
