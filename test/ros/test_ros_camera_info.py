"""``use_camera_info``: the node compares VGGT's focal lengths with ``camera_info`` (separate process).

The tiny random backbone's focal lengths mean nothing, so only the plumbing is checked: a
``camera_info`` of the images' size is used (a finite ratio appears on ``/diagnostics``), one
of another size is counted as rejected.
"""

from __future__ import annotations

import math
import signal
import time

from node_process import RELIABLE, Driver, domain_id, ros_env, start_node, stop_node, textured_frames, write_params
from sensor_msgs.msg import CameraInfo

from vggt_uncertainty_ros.ros.conversions import ns_to_stamp, rgb_to_image_msg

HEIGHT, WIDTH = 48, 64
T0_NS = 1_700_000_000 * 1_000_000_000
DT_NS = 100_000_000


def _camera_info(width: int, height: int, stamp_ns: int) -> CameraInfo:
    msg = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = "cam"
    msg.k = [50.0, 0.0, width / 2, 0.0, 50.0, height / 2, 0.0, 0.0, 1.0]
    return msg


def test_camera_info_focal_ratio_and_size_mismatch_reach_diagnostics(tmp_path):
    domain = domain_id(offset=89)
    env = ros_env(tmp_path / "ros_log", domain)
    params = write_params(
        tmp_path / "params.yaml",
        **{"backbone.device": "cpu"},
        window_size=2,
        window_stride=1,
        image_qos="reliable",
        use_camera_info=True,
        camera_info_focal_tolerance=0.2,
        diagnostics_period_s=0.2,
    )
    log_path = tmp_path / "node.log"
    proc = start_node(params, env, log_path)
    driver = Driver(domain)
    info_pub = driver.node.create_publisher(CameraInfo, "/camera_info", RELIABLE)
    frames = textured_frames(4, HEIGHT, WIDTH, seed=3)
    try:
        driver.wait_for_subscriber(90.0)
        deadline = time.monotonic() + 30.0
        while info_pub.get_subscription_count() == 0:
            assert time.monotonic() < deadline, "the node never subscribed to /camera_info"
            time.sleep(0.05)
        driver.image_pub.publish(rgb_to_image_msg(frames[0], "rgb8", T0_NS, "cam"))
        driver.wait_diag(lambda v: int(v.get("images_received", 0)) >= 1, 30.0, "the first image counted")
        info_pub.publish(_camera_info(640, 480, T0_NS))  # another resolution: rejected
        info_pub.publish(_camera_info(WIDTH, HEIGHT, T0_NS))
        driver.wait_diag(lambda v: int(v.get("camera_info_received", 0)) == 2, 30.0, "camera_info counted")
        for k, frame in enumerate(frames[1:], start=1):
            driver.image_pub.publish(rgb_to_image_msg(frame, "rgb8", T0_NS + k * DT_NS, "cam"))
            time.sleep(0.05)
        v = driver.wait_diag(lambda v: int(v.get("focal_windows_compared", 0)) >= 1, 60.0, "a focal comparison")
        code, waited = stop_node(proc, signal.SIGINT, 5.0)
    finally:
        if proc.poll() is None:
            proc.kill()
        driver.close()
    log = log_path.read_text(errors="replace")
    assert int(v["camera_info_rejected/size_mismatch"]) == 1, v
    assert int(v["camera_info_rejected/uncalibrated"]) == 0
    for key in ("focal_ratio_fx", "focal_ratio_fy"):
        assert math.isfinite(float(v[key])) and float(v[key]) > 0, (key, v[key])
    assert float(v["focal_ratio_tolerance"]) == 0.2
    assert "camera_info is for 640x480 images" in log
    assert code == 0 and waited < 5.0, f"exit {code} after {waited:.1f} s\n{log}"
    driver.assert_covariances_spd()
