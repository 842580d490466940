"""Layering: only ``ros/`` imports ROS; the core imports without torch."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vggt_uncertainty_ros"
ROS_PACKAGES = "rclpy|geometry_msgs|sensor_msgs|nav_msgs|std_msgs|diagnostic_msgs|tf2_msgs"
ROS_IMPORT = re.compile(rf"^\s*(from|import)\s+({ROS_PACKAGES})\b", re.MULTILINE)


def test_only_the_ros_layer_imports_ros():
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "ros" not in path.relative_to(PACKAGE).parts[:1] and ROS_IMPORT.search(path.read_text())
    ]
    assert offenders == []


def test_core_modules_import_without_torch_or_ros():
    code = (
        "import sys\n"
        "import vggt_uncertainty_ros.geometry, vggt_uncertainty_ros.calibration, vggt_uncertainty_ros.data\n"
        "import vggt_uncertainty_ros.tracking, vggt_uncertainty_ros.worker, vggt_uncertainty_ros.measurements\n"
        "import vggt_uncertainty_ros.intrinsics_check, vggt_uncertainty_ros.demo, vggt_uncertainty_ros.cli.main\n"
        "import vggt_uncertainty_ros.allocator\n"
        "heavy = sorted(m for m in ('torch', 'rclpy', 'evo', 'gtsam') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
