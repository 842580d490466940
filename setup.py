"""Build script: an ament_python package for colcon, and a plain pip package.

colcon users: ``colcon build --packages-select vggt_uncertainty_ros`` installs the node
under ``lib/vggt_uncertainty_ros/`` (setup.cfg) and ``launch/`` + ``config/`` under
``share/vggt_uncertainty_ros``. pip users: ``pip install -c constraints.txt -e .[ros,dev]``.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "vggt_uncertainty_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Calibrated 6-DOF pose measurements from a monocular camera with VGGT + an uncertainty head",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    package_data={PACKAGE: ["py.typed"]},
    include_package_data=True,
    python_requires=">=3.10",
    # torch is pinned to the tested release: any install resolves to one known wheel (the CPU
    # build from local disk on this project's machines, the CUDA build from PyPI on a robot),
    # never to an open range that downloads GBs of CUDA. A robot that must keep another torch
    # build installs this package with --no-deps.
    install_requires=[
        "numpy>=1.24",
        "scipy>=1.10",
        "torch==2.13.0",
        "safetensors>=0.4",
        "huggingface_hub>=0.20",
        "pillow>=10",
        "opencv-python-headless>=4.8",  # the geometric backbone (CPU, no weights) and synthetic motion blur
        "pyyaml>=6",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "tensorboard>=2.14",
        "rosbags>=0.10",
        "evo>=1.28",
        "gtsam>=4.2",
    ],
    extras_require={
        "ros": [
            "ros-rclpy[fastrtps]",
            "ros-geometry-msgs",
            "ros-sensor-msgs",
            "ros-nav-msgs",
            "ros-std-msgs",
            "ros-diagnostic-msgs",
            "ros-ament-index-python",
        ],
        "dev": ["pytest>=7", "pytest-timeout>=2.2", "hypothesis>=6.100", "ruff>=0.6", "mypy>=1.10"],
        "wandb": ["wandb"],
    },
    entry_points={
        "console_scripts": [
            "vggt-uncertainty = vggt_uncertainty_ros.cli.main:main",
            "vggt_uncertainty_node = vggt_uncertainty_ros.ros.node:main",
        ],
    },
    zip_safe=False,
)
