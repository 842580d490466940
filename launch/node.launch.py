"""Launch ``vggt_uncertainty_node`` with its parameter file.

    ros2 launch vggt_uncertainty_ros node.launch.py \
        params_file:=/path/to/params.yaml use_sim_time:=true namespace:=robot1 image:=/camera/image_raw

Works for a colcon install (``launch_ros`` ``Node`` with ``package=``: the executable is found
under ``lib/vggt_uncertainty_ros/``) and for a pip install (``ExecuteProcess`` of the
``vggt_uncertainty_node`` console script on PATH, used when the package is not in the ament
index). The default parameter file is the package's ``share/.../config/params.yaml`` (colcon)
or ``config/params.yaml`` next to this launch file's folder (source checkout / pip).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from launch import LaunchDescription

PACKAGE = "vggt_uncertainty_ros"
EXECUTABLE = "vggt_uncertainty_node"
NODE_NAME = "vggt_uncertainty_node"


def package_share() -> Path | None:
    """The package's ament share directory, or None when it is not in the ament index.

    None as well without ``AMENT_PREFIX_PATH`` (a pip install outside any ROS environment,
    where ament_index_python raises ``OSError``).
    """
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory(PACKAGE))
    except (PackageNotFoundError, OSError, ValueError):
        return None


def node_namespace(value: str) -> str:
    """``namespace:=`` as an absolute ROS namespace: ``robot1``, ``/robot1`` and ``/robot1/`` -> ``/robot1``."""
    return "/" + "/".join(part for part in value.strip().split("/") if part)


def default_params_file() -> str:
    """``share/vggt_uncertainty_ros/config/params.yaml`` if installed with colcon, else the checkout's."""
    share = package_share()
    if share is not None and (share / "config" / "params.yaml").is_file():
        return str(share / "config" / "params.yaml")
    return str(Path(__file__).resolve().parent.parent / "config" / "params.yaml")


def launch_arguments() -> list[DeclareLaunchArgument]:
    """The launch arguments, each with a description."""
    return [
        DeclareLaunchArgument(
            "params_file",
            default_value=default_params_file(),
            description="ROS 2 parameter file of the node (see config/params.yaml for every parameter)",
        ),
        DeclareLaunchArgument(
            "use_sim_time",
            default_value="false",
            description="use /clock (true when playing a bag with --clock)",
        ),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its topics"),
        DeclareLaunchArgument("image", default_value="image", description="sensor_msgs/Image topic to subscribe to"),
        DeclareLaunchArgument(
            "camera_info",
            default_value="camera_info",
            description="sensor_msgs/CameraInfo topic (read only with the parameter use_camera_info)",
        ),
    ]


def node_action(use_ament: bool):
    """The node itself: a ``launch_ros`` Node (colcon) or an ``ExecuteProcess`` (pip)."""
    params_file = LaunchConfiguration("params_file")
    use_sim_time = LaunchConfiguration("use_sim_time")
    namespace = LaunchConfiguration("namespace")
    image = LaunchConfiguration("image")
    camera_info = LaunchConfiguration("camera_info")
    if use_ament:
        from launch_ros.actions import Node

        return Node(
            package=PACKAGE,
            executable=EXECUTABLE,
            name=NODE_NAME,
            namespace=namespace,
            parameters=[params_file, {"use_sim_time": use_sim_time}],
            remappings=[("image", image), ("camera_info", camera_info)],
            output="screen",
            emulate_tty=True,
        )
    return OpaqueFunction(function=_pip_process, args=[shutil.which(EXECUTABLE) or EXECUTABLE])


def _pip_process(context, executable: str) -> list:
    """The pip layout's ``ExecuteProcess``, built once the launch arguments have values."""

    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    return [
        ExecuteProcess(
            cmd=[
                executable,
                "--ros-args",
                "-r",
                f"__node:={NODE_NAME}",
                "-r",
                f"__ns:={node_namespace(arg('namespace'))}",
                "-r",
                f"image:={arg('image')}",
                "-r",
                f"camera_info:={arg('camera_info')}",
                "--params-file",
                arg("params_file"),
                "-p",
                f"use_sim_time:={arg('use_sim_time')}",
            ],
            name=NODE_NAME,
            output="screen",
            emulate_tty=True,
            sigterm_timeout="5",
        )
    ]


def generate_launch_description() -> LaunchDescription:
    """Entry point of ``ros2 launch vggt_uncertainty_ros node.launch.py``."""
    return LaunchDescription([*launch_arguments(), node_action(use_ament=package_share() is not None)])
