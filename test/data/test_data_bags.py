"""ROS 1 / ROS 2 bags: TUM's layout, exact read-back of synthetic data, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from vggt_uncertainty_ros.data import (
    BagFile,
    RawRos2BagWriter,
    bag_topics,
    open_sequence,
    read_bag_trajectory,
    read_tum_trajectory,
    synth,
)
from vggt_uncertainty_ros.data.synth import Renderer, plan_sequence
from vggt_uncertainty_ros.data.writers import Ros1SequenceWriter, Ros2SequenceWriter
from vggt_uncertainty_ros.errors import DataError, TopicNotFoundError

SEED, N, W, H = 7, 10, 64, 48
TF_MD5 = "94810edda583a504dfda3829e70d7eec"  # tf/tfMessage == tf2_msgs/TFMessage


@pytest.fixture(scope="module")
def seq(tmp_path_factory: pytest.TempPathFactory) -> synth.SynthResult:
    out = tmp_path_factory.mktemp("synth_bags")
    return synth.generate(out, SEED, N, formats=synth.FORMATS, width=W, height=H)


@pytest.fixture(scope="module")
def reference() -> tuple[synth.SynthPlan, list[np.ndarray], list[np.ndarray]]:
    plan = plan_sequence(SEED, N, W, H)
    renderer = Renderer(plan.scene, W, H)
    views = [renderer.render(T) for T in plan.poses_at(plan.image_stamps_ns)]
    return plan, [v[0] for v in views], [v[1] for v in views]


def test_ros1_bag_has_tum_topics_types_and_frames(seq: synth.SynthResult) -> None:
    path = seq.paths["ros1"]
    assert bag_topics(path) == {
        "/camera/rgb/image_color": "sensor_msgs/msg/Image",
        "/camera/rgb/camera_info": "sensor_msgs/msg/CameraInfo",
        "/camera/depth/image": "sensor_msgs/msg/Image",
        "/camera/depth/camera_info": "sensor_msgs/msg/CameraInfo",
        "/tf": "tf/msg/tfMessage",
    }
    with AnyReader([path]) as reader:
        tf_conn = next(c for c in reader.connections if c.topic == "/tf")
        assert tf_conn.digest == TF_MD5
        edges, sizes, images = set(), [], {}
        for conn, _, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == "/tf":
                sizes.append(len(msg.transforms))
                edges |= {(t.header.frame_id, t.child_frame_id) for t in msg.transforms}
            elif conn.topic.endswith("image") or conn.topic.endswith("image_color"):
                images[conn.topic] = (msg.encoding, msg.header.frame_id, msg.step, msg.width)
    assert edges == {
        ("/world", "/kinect"),
        ("/kinect", "/openni_camera"),
        ("/openni_camera", "/openni_rgb_frame"),
        ("/openni_rgb_frame", "/openni_rgb_optical_frame"),
        ("/openni_camera", "/openni_depth_frame"),
        ("/openni_depth_frame", "/openni_depth_optical_frame"),
    }
    assert max(sizes) > 1  # several transforms per message
    assert images["/camera/rgb/image_color"] == ("rgb8", "/openni_rgb_optical_frame", 3 * W, W)
    assert images["/camera/depth/image"] == ("32FC1", "/openni_depth_optical_frame", 4 * W, W)


def test_ros2_bags_use_ros2_types_and_tf2_frame_names(seq: synth.SynthResult) -> None:
    for key in ("ros2", "ros2-mcap"):
        assert bag_topics(seq.paths[key])["/tf"] == "tf2_msgs/msg/TFMessage"
    with AnyReader([seq.paths["ros2"]]) as reader:
        conn = next(c for c in reader.connections if c.topic == "/camera/rgb/image_color")
        _, _, raw = next(reader.messages(connections=[conn]))
        assert reader.deserialize(raw, conn.msgtype).header.frame_id == "openni_rgb_optical_frame"
    assert any(p.suffix == ".mcap" for p in seq.paths["ros2-mcap"].iterdir())


def test_ground_truth_round_trips_to_1e9(seq: synth.SynthResult, reference) -> None:
    plan = reference[0]
    truth = plan.poses_at(plan.mocap_stamps_ns)
    stamps, T = read_tum_trajectory(seq.paths["tum"] / "groundtruth.txt")
    np.testing.assert_array_equal(stamps, plan.mocap_stamps_ns)
    np.testing.assert_allclose(T, truth, atol=1e-9, rtol=0)
    for key in ("ros1", "ros2", "ros2-mcap"):
        stamps, T = read_bag_trajectory(seq.paths[key])
        np.testing.assert_array_equal(stamps, plan.mocap_stamps_ns)
        np.testing.assert_allclose(T, truth, atol=1e-9, rtol=0)


def test_all_readers_read_back_exactly(seq: synth.SynthResult, reference) -> None:
    plan, rgbs, depths = reference
    per_format = {}
    for key, path in seq.paths.items():
        with open_sequence(path, with_depth=True) as reader:
            assert reader.n_frames == N
            per_format[key] = list(reader.frames())
            assert reader.warnings.as_dict() == {}
            if key != "tum":
                np.testing.assert_allclose(reader.intrinsics, plan.K)
    for key, frames in per_format.items():
        assert [f.stamp_ns for f in frames] == plan.image_stamps_ns.tolist()
        assert [f.index for f in frames] == list(range(N))
        for frame, rgb, depth in zip(frames, rgbs, depths):
            assert frame.image.dtype == np.uint8 and frame.image.shape == (H, W, 3)
            np.testing.assert_array_equal(frame.image, rgb)
            if key == "tum":  # TUM PNG: round(depth * 5000)
                np.testing.assert_allclose(frame.depth, depth, atol=0.5 / 5000 + 1e-6, rtol=0)
            else:
                np.testing.assert_array_equal(frame.depth, depth)
        poses = np.stack([f.T_world_cam for f in frames])
        ref_poses = np.stack([f.T_world_cam for f in per_format["tum"]])
        np.testing.assert_allclose(poses, ref_poses, atol=1e-9, rtol=0)
    # interpolated 100 Hz ground truth is close to the pose each image was rendered at
    truth = plan.poses_at(plan.image_stamps_ns)
    np.testing.assert_allclose(ref_poses[:, :3, 3], truth[:, :3, 3], atol=1e-4)


def test_missing_topic_lists_the_bag_topics(seq: synth.SynthResult) -> None:
    for key in ("ros1", "ros2"):
        match = r"no topic '/camera/rgb/image_mono'.*/camera/rgb/image_color \(sensor_msgs/msg/Image\)"
        reader = open_sequence(seq.paths[key], image_topic="/camera/rgb/image_mono")
        with pytest.raises(TopicNotFoundError, match=match):
            reader.open()


@pytest.mark.parametrize("ros2", [False, True])
def test_bag_duplicate_and_out_of_order_stamps_are_reported(tmp_path: Path, ros2: bool) -> None:
    ms = 1_000_000
    base = 1_305_031_102_000_000_000
    headers = [base, base + 33 * ms, base + 33 * ms, base + 20 * ms, base + 100 * ms]
    K = np.array([[50.0, 0, 7.5], [0, 50.0, 5.5], [0, 0, 1]])
    path = tmp_path / ("bad_ros2" if ros2 else "bad.bag")
    writer_cls = Ros2SequenceWriter if ros2 else Ros1SequenceWriter
    with writer_cls(path, K, (16, 12)) as writer:
        for k, stamp in enumerate(headers):  # received in this order, 10 ms apart
            log_time = np.int64(base + k * 10 * ms)  # numpy ints are accepted as stamps
            writer.write_rgb(np.int64(stamp), np.full((12, 16, 3), k, np.uint8), log_time_ns=log_time)
    with open_sequence(path) as reader:
        frames = list(reader.frames())
        warnings = reader.warnings.as_dict()
    assert [f.stamp_ns for f in frames] == headers  # bag order kept, nothing dropped
    assert [int(f.image[0, 0, 0]) for f in frames] == [0, 1, 2, 3, 4]
    assert warnings == {"duplicate_stamps": 1, "out_of_order_stamps": 1}
    assert all(f.T_world_cam is None for f in frames)  # no /tf, no ground truth


def test_compressed_ros1_bag_reads_the_same(tmp_path: Path, reference) -> None:
    plan, rgbs, depths = reference
    path = tmp_path / "bz2.bag"
    with Ros1SequenceWriter(path, plan.K, (W, H), compression="bz2") as writer:
        for stamp, T in zip(plan.mocap_stamps_ns.tolist(), plan.poses_at(plan.mocap_stamps_ns)):
            writer.write_pose(stamp, T)
        for stamp, rgb, depth in zip(plan.image_stamps_ns.tolist(), rgbs, depths):
            writer.write_rgb(stamp, rgb)
            writer.write_depth(stamp, depth)
    with open_sequence(path, with_depth=True) as reader:
        frames = list(reader.frames())
    assert len(frames) == N
    for frame, rgb, depth in zip(frames, rgbs, depths):
        np.testing.assert_array_equal(frame.image, rgb)
        np.testing.assert_array_equal(frame.depth, depth)
    stamps, T = read_bag_trajectory(path)
    np.testing.assert_array_equal(stamps, plan.mocap_stamps_ns)
    np.testing.assert_allclose(T, plan.poses_at(plan.mocap_stamps_ns), atol=1e-9, rtol=0)


def test_unknown_world_frame_is_reported_not_fatal(seq: synth.SynthResult) -> None:
    with open_sequence(seq.paths["ros1"], world_frame="/map") as reader:
        frames = list(reader.frames())
        assert reader.warnings.as_dict() == {"no_ground_truth": 1}
    assert len(frames) == N and all(f.T_world_cam is None for f in frames)
    # the chain to another frame of the tree works too: pose of the depth optical frame
    with open_sequence(seq.paths["ros2"], camera_frame="openni_depth_optical_frame") as reader:
        depth_frames = list(reader.frames())
    with open_sequence(seq.paths["ros2"]) as reader:
        rgb_frames = list(reader.frames())
    offset = np.linalg.inv(rgb_frames[0].T_world_cam) @ depth_frames[0].T_world_cam
    # static chain: the depth optical frame sits 2 cm to the left (-x) of the rgb one, same axes;
    # interpolating the two composed trajectories differs by the lever arm only (~1e-9 m)
    np.testing.assert_allclose(offset[:3, 3], [-0.02, 0.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(offset[:3, :3], np.eye(3), atol=1e-7)


def test_raw_ros2_writer_round_trips_cdr_bytes(tmp_path: Path) -> None:
    ts = get_typestore(Stores.ROS2_HUMBLE)
    Time = ts.types["builtin_interfaces/msg/Time"]
    String = ts.types["std_msgs/msg/String"]
    Header = ts.types["std_msgs/msg/Header"]
    blobs = [ts.serialize_cdr(String(data=f"m{k}"), "std_msgs/msg/String") for k in range(3)]
    header = ts.serialize_cdr(Header(stamp=Time(sec=1, nanosec=2), frame_id="cam@1.2"), "std_msgs/msg/Header")
    path = tmp_path / "raw"
    with RawRos2BagWriter(path) as writer:
        writer.add_topic("/silent", "std_msgs/msg/Header")  # declared, never written
        for k, blob in enumerate(blobs):
            writer.write("/chatter", "std_msgs/msg/String", 100 + k, blob)
        writer.write("/header", "std_msgs/msg/Header", 99, header)
        with pytest.raises(DataError, match="already holds std_msgs/msg/String"):
            writer.write("/chatter", "std_msgs/msg/Header", 200, header)
    assert bag_topics(path) == {
        "/chatter": "std_msgs/msg/String",
        "/header": "std_msgs/msg/Header",
        "/silent": "std_msgs/msg/Header",
    }
    with BagFile(path) as bag:
        read = [(m.topic, m.log_time_ns, bytes(m.raw), obj) for m, obj in bag.read(["/chatter", "/header"])]
    assert [r[:3] for r in read] == [("/header", 99, header)] + [("/chatter", 100 + k, b) for k, b in enumerate(blobs)]
    assert [r[3].data for r in read[1:]] == ["m0", "m1", "m2"] and read[0][3].frame_id == "cam@1.2"
