"""The shipped Fast DDS profile: well-formed, accepted by Fast DDS, and carries VGA images best-effort."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from node_process import domain_id, ros_env

PROFILE = Path(__file__).resolve().parents[2] / "config" / "fastdds_large_shm.xml"
NS = {"d": "http://www.eprosima.com"}
VGA_RGB8 = 640 * 480 * 3

_SCRIPT = r"""
import sys, time, numpy as np, rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node("profile_" + sys.argv[1])
if sys.argv[1] == "pub":
    # publish until the subscriber has had a complete image and left (or 30 s have passed)
    pub = node.create_publisher(Image, "vga", qos_profile_sensor_data)
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    msg = Image(height=480, width=640, encoding="rgb8", step=640 * 3)
    msg.data = np.random.default_rng(0).integers(0, 255, 480 * 640 * 3, dtype=np.uint8).tobytes()
    sent = 0
    while pub.get_subscription_count() > 0 and time.monotonic() < deadline:
        msg.header.stamp.nanosec = sent
        pub.publish(msg)
        sent += 1
        time.sleep(0.04)
    print("SENT", sent)
else:
    got = []
    node.create_subscription(Image, "vga", lambda m: got.append(len(m.data)), qos_profile_sensor_data)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not got:
        rclpy.spin_once(node, timeout_sec=0.1)
    print("RECEIVED", len(got), sum(n == 640 * 480 * 3 for n in got))
node.destroy_node()
rclpy.shutdown()
"""


def test_profile_gives_a_large_shared_memory_segment():
    root = ET.parse(PROFILE).getroot()
    (shm,) = [t for t in root.iterfind(".//d:transport_descriptor", NS) if t.findtext("d:type", namespaces=NS) == "SHM"]
    segment = int(shm.findtext("d:segment_size", namespaces=NS))
    assert segment >= 8 * VGA_RGB8
    assert int(shm.findtext("d:maxMessageSize", namespaces=NS)) <= segment
    participant = root.find(".//d:participant", NS)
    assert participant.get("is_default_profile") == "true"
    used = [t.text for t in participant.iterfind(".//d:userTransports/d:transport_id", NS)]
    assert shm.findtext("d:transport_id", namespaces=NS) in used


def test_best_effort_vga_images_cross_processes_with_the_profile(tmp_path):
    env = ros_env(tmp_path / "ros_log", domain_id(offset=71))
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(PROFILE)
    env["RMW_FASTRTPS_USE_QOS_FROM_XML"] = "0"
    sub = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, "sub"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    pub = subprocess.run(
        [sys.executable, "-c", _SCRIPT, "pub"], check=False, env=env, capture_output=True, text=True, timeout=60
    )
    out, err = sub.communicate(timeout=60)
    assert pub.returncode == 0 and sub.returncode == 0, pub.stderr + err
    for stream in (pub.stderr, err):
        assert "XMLPARSER" not in stream and "Error" not in stream, stream
    received, full = (int(x) for x in out.split("RECEIVED")[1].split())
    # with the profile a complete 900 KiB best-effort sample arrives (the publisher repeats
    # until the subscriber has one and leaves): no count that depends on luck
    assert received >= 1 and received == full, f"received {received}, complete {full}; {pub.stdout}"
