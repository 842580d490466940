"""The package is a correct ament_python package and a pip package at the same time."""

from __future__ import annotations

import configparser
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import vggt_uncertainty_ros

ROOT = Path(__file__).resolve().parents[1]
ROS_DEPENDENCIES = {
    "rclpy",
    "sensor_msgs",
    "geometry_msgs",
    "nav_msgs",
    "std_msgs",
    "diagnostic_msgs",
    "launch",
    "launch_ros",
}


def test_package_xml_is_format_3_ament_python_with_the_ros_dependencies():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "vggt_uncertainty_ros"
    assert root.findtext("version") == vggt_uncertainty_ros.__version__
    assert root.find("export/build_type").text == "ament_python"
    depends = {e.text for e in root if e.tag in ("depend", "exec_depend")}
    assert depends >= ROS_DEPENDENCIES, ROS_DEPENDENCIES - depends
    assert (ROOT / "resource" / "vggt_uncertainty_ros").is_file()  # the ament index marker


def test_setup_installs_share_files_scripts_and_console_entry_points():
    setup_py = (ROOT / "setup.py").read_text()
    assert f'version="{vggt_uncertainty_ros.__version__}"' in setup_py
    for data_dir in ("share/{PACKAGE}/launch", "share/{PACKAGE}/config", "share/ament_index/resource_index/packages"):
        assert data_dir in setup_py
    assert re.search(r'"vggt-uncertainty = vggt_uncertainty_ros\.cli\.main:main"', setup_py)
    assert re.search(r'"vggt_uncertainty_node = vggt_uncertainty_ros\.ros\.node:main"', setup_py)
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["install"]["install_scripts"] == "$base/lib/vggt_uncertainty_ros"  # where ros2 run/launch look
    assert list((ROOT / "launch").glob("*.launch.py")) and (ROOT / "config" / "params.yaml").is_file()


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "make test" in ci
    makefile = (ROOT / "Makefile").read_text()
    assert "-c constraints.txt torch" in makefile  # torch comes in pinned, before anything else
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text().split()  # unpinned: GBs of CUDA
    setup = (ROOT / "setup.py").read_text()
    assert '"torch==2.13.0"' in setup and "torch>=" not in setup  # no set-up path resolves an open range
