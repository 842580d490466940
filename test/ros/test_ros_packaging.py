"""What a robot needs to run the node: package.xml's rosdep keys, and no offline-tool imports.

The rosdep keys are checked against ``rosdep_keys.json``, recorded from a rosdistro checkout by
``benchmarks/check_rosdep_keys.py`` (re-run it when package.xml changes; the test says so).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECORD = Path(__file__).with_name("rosdep_keys.json")
DISTROS = ("humble", "jazzy", "kilted", "rolling")
#: offline-tool dependencies the node must not import (setup.py install_requires minus the robot's)
OFFLINE_ONLY = ("rosbags", "evo", "gtsam", "matplotlib", "tqdm", "tensorboard", "huggingface_hub")
#: Python module -> rosdep key, for the imports of ros/ and launch/
ROS_MODULE_KEYS = {
    "rclpy": "rclpy",
    "rcl_interfaces": "rcl_interfaces",
    "builtin_interfaces": "builtin_interfaces",
    "sensor_msgs": "sensor_msgs",
    "geometry_msgs": "geometry_msgs",
    "nav_msgs": "nav_msgs",
    "std_msgs": "std_msgs",
    "diagnostic_msgs": "diagnostic_msgs",
    "tf2_msgs": "tf2_msgs",
    "launch": "launch",
    "launch_ros": "launch_ros",
    "ament_index_python": "ament_index_python",
    "numpy": "python3-numpy",
    "scipy": "python3-scipy",
    "yaml": "python3-yaml",
    "PIL": "python3-pil",
    "torch": "python3-torch",
}


def _exec_depends() -> set[str]:
    root = ET.parse(ROOT / "package.xml").getroot()
    return {e.text.strip() for e in root if e.tag in ("depend", "exec_depend")}


def test_every_package_xml_key_resolves_on_humble_jazzy_kilted_and_rolling():
    root = ET.parse(ROOT / "package.xml").getroot()
    keys = {e.text.strip() for e in root if e.tag.endswith("depend")}
    recorded = json.loads(RECORD.read_text())["keys"]
    stale = sorted(keys - set(recorded))
    assert not stale, f"re-run benchmarks/check_rosdep_keys.py --write {RECORD.relative_to(ROOT)}: {stale}"
    unresolved = [f"{k} on {d}" for k in sorted(keys) for d in DISTROS if not recorded[k].get(d)]
    assert not unresolved, unresolved


def test_package_xml_names_every_module_the_node_and_launch_file_import():
    files = [*(ROOT / "vggt_uncertainty_ros" / "ros").glob("*.py"), ROOT / "launch" / "node.launch.py"]
    imported = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    needed = {ROS_MODULE_KEYS[m] for m in imported if m in ROS_MODULE_KEYS}
    assert needed >= {"rclpy", "sensor_msgs", "launch_ros", "python3-torch"}  # the scan saw the imports
    missing = needed - _exec_depends()
    assert not missing, f"package.xml lacks {sorted(missing)}"
    assert {"python3-tqdm", "python3-rosbags-pip", "python3-huggingface-hub-pip"} <= _exec_depends()


@pytest.mark.slow
def test_the_node_imports_and_starts_without_offline_tool_packages(tmp_path):
    script = textwrap.dedent(
        f"""
        import importlib.abc, sys
        BLOCKED = {OFFLINE_ONLY!r}

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError("blocked for the test: " + name)

        sys.meta_path.insert(0, Block())
        import rclpy
        from rclpy.parameter import Parameter
        from vggt_uncertainty_ros.ros import node as node_module

        rclpy.init(args=[], domain_id=99)
        overrides = [Parameter("backbone.device", value="cpu"), Parameter("window_size", value=2),
                     Parameter("window_stride", value=1)]
        n = node_module.VggtUncertaintyNode(parameter_overrides=overrides)
        n.close()
        rclpy.try_shutdown()
        print("loaded:", sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
        """
    )
    env = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_LOG_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loaded: []" in result.stdout, result.stdout
