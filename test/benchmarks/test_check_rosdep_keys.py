"""benchmarks/check_rosdep_keys.py on a miniature rosdistro checkout."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from benchmarks.check_rosdep_keys import main, resolve

PACKAGE_XML = """<?xml version="1.0"?>
<package format="3"><name>p</name>
  <exec_depend>rclpy</exec_depend><exec_depend>python3-numpy</exec_depend>
  <exec_depend>python3-rosbags-pip</exec_depend><exec_depend>python3-torch</exec_depend>
  <test_depend>python3-nothere</test_depend>
</package>
"""


def _rosdistro(root: Path) -> Path:
    (root / "rosdep").mkdir(parents=True)
    rules = {
        "python3-numpy": {"ubuntu": ["python3-numpy"]},
        "python3-rosbags-pip": {"ubuntu": {"pip": {"packages": ["rosbags"]}}},
        "python3-torch": {"ubuntu": {"*": ["python3-torch"], "jammy": None}},
    }
    (root / "rosdep" / "python.yaml").write_text(yaml.safe_dump(rules))
    (root / "rosdep" / "base.yaml").write_text("{}\n")
    for distro, codename in (("humble", "jammy"), ("jazzy", "noble"), ("kilted", "noble"), ("rolling", "resolute")):
        (root / distro).mkdir()
        dist = {
            "release_platforms": {"ubuntu": [codename]},
            "repositories": {"rclpy": {"release": {"version": "1.0.0-1", "packages": ["rclpy"]}}},
        }
        (root / distro / "distribution.yaml").write_text(yaml.safe_dump(dist))
    return root


def test_keys_resolve_per_distro_and_unknown_or_unavailable_keys_fail(tmp_path):
    rosdistro = _rosdistro(tmp_path / "rosdistro")
    out = resolve(["rclpy", "python3-numpy", "python3-rosbags-pip", "python3-torch", "python3-nothere"], rosdistro)
    assert out["rclpy"]["humble"] == "ros: humble package"
    assert out["python3-numpy"]["rolling"] == "apt: python3-numpy"
    assert out["python3-rosbags-pip"]["jazzy"] == "pip: rosbags"
    assert out["python3-torch"]["humble"] is None and out["python3-torch"]["kilted"] == "apt: python3-torch"
    assert set(out["python3-nothere"].values()) == {None}
    package_xml = tmp_path / "package.xml"
    package_xml.write_text(PACKAGE_XML)
    record = tmp_path / "keys.json"
    assert main(["--rosdistro", str(rosdistro), "--package-xml", str(package_xml), "--write", str(record)]) == 1
    assert json.loads(record.read_text())["keys"]["python3-numpy"]["humble"] == "apt: python3-numpy"
