"""The bag replay's companion topics: a ROS 1 bag's camera_info is rebuilt as the ROS 2 message."""

from __future__ import annotations

import numpy as np
import pytest

from vggt_uncertainty_ros.data import BagFile
from vggt_uncertainty_ros.data.layout import RGB_INFO_TOPIC
from vggt_uncertainty_ros.data.synth import generate
from vggt_uncertainty_ros.ros.replay import _camera_info_from_rosbags


def test_a_ros1_camera_info_is_rebuilt_field_for_field(tmp_path) -> None:
    seq = generate(tmp_path / "synth", seed=3, n_frames=2, formats=("ros1",), width=64, height=48)
    with BagFile(seq.paths["ros1"]) as bag:
        stored = [msg for _, msg in bag.read([RGB_INFO_TOPIC])]
    assert len(stored) == 2
    out = _camera_info_from_rosbags(stored[0])
    assert (out.width, out.height) == (64, 48)
    np.testing.assert_allclose(np.reshape(out.k, (3, 3)), seq.K)
    assert list(out.p) == pytest.approx(list(stored[0].P)) and out.distortion_model == stored[0].distortion_model
    assert out.header.frame_id == stored[0].header.frame_id and out.header.stamp.sec == stored[0].header.stamp.sec
