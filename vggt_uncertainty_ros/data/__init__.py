"""TUM data in every form: folders, ROS 1 / ROS 2 bags, synthetic sequences, windows.

Layout by job: :mod:`~vggt_uncertainty_ros.data.readers` (TUM folder, bags),
:mod:`~vggt_uncertainty_ros.data.writers` (TUM folder, ROS 1 bag, ROS 2 bag),
:mod:`~vggt_uncertainty_ros.data.layout` (TUM's topics, frames, static chain), and
``tum`` (text files), ``groundtruth``, ``image_codec``, ``windows``, ``synth``, ``types``.

Public API (see docs/ARCHITECTURE.md, "data"):

* :class:`Frame`, :class:`WarningCounter`;
* :func:`open_sequence` -> streaming :class:`SequenceReader` (TUM folder, ``.bag``, ROS 2 bag, image folder),
  the one way to open any sequence;
* :class:`BagFile`: raw/deserialised messages of any topic of a bag (reader errors -> ``DataError``);
* :class:`TumFolderWriter`, :class:`Ros1SequenceWriter`, :class:`Ros2SequenceWriter`;
  :class:`RawRos2BagWriter` (already-serialised messages);
* :func:`read_tum_trajectory`, :func:`write_tum_trajectory`, :func:`associate`;
* :mod:`~vggt_uncertainty_ros.data.image_codec`: :func:`decode_image`, :func:`encode_image`,
  :func:`decode_image_rgb8`, :func:`to_rgb8`;
* :class:`WindowConfig`, :func:`load_window_config`, :class:`WindowBuilder`, :class:`Window`,
  :func:`iter_windows`, :func:`window_indices`;
* :func:`read_bag_trajectory`, :func:`bag_topics` (bags, via ``rosbags``);
* :mod:`~vggt_uncertainty_ros.data.synth`: ``synth.generate(out_dir, seed, n_frames, formats)``.
"""

from typing import Any

from vggt_uncertainty_ros.data.groundtruth import GroundTruth, GtMode
from vggt_uncertainty_ros.data.image_codec import (
    SUPPORTED_ENCODINGS,
    decode_image,
    decode_image_rgb8,
    encode_image,
    to_rgb8,
)
from vggt_uncertainty_ros.data.layout import DEFAULT_DEPTH_TOPIC, DEFAULT_IMAGE_TOPIC
from vggt_uncertainty_ros.data.tum import (
    associate,
    read_tum_list,
    read_tum_trajectory,
    write_tum_list,
    write_tum_trajectory,
)
from vggt_uncertainty_ros.data.types import Frame, WarningCounter
from vggt_uncertainty_ros.data.windows import (
    Window,
    WindowBuilder,
    WindowConfig,
    iter_windows,
    load_window_config,
    window_indices,
)

#: Served lazily (PEP 562): readers, writers and synth import ``rosbags``, an offline-tool
#: dependency; the node imports this package for the codec and windowing and must start on a
#: robot without it (test/ros/test_ros_packaging.py).
_LAZY = {
    "readers": (
        "BagFile",
        "BagMessage",
        "BagReader",
        "ImageFolderReader",
        "SequenceReader",
        "TumFolderReader",
        "bag_topics",
        "open_sequence",
        "read_bag_trajectory",
    ),
    "writers": ("RawRos2BagWriter", "Ros1SequenceWriter", "Ros2SequenceWriter", "TumFolderWriter"),
}


def __getattr__(name: str) -> Any:
    import importlib

    if name == "synth":
        return importlib.import_module("vggt_uncertainty_ros.data.synth")
    for module, names in _LAZY.items():
        if name in names:
            return getattr(importlib.import_module(f"vggt_uncertainty_ros.data.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_DEPTH_TOPIC",
    "DEFAULT_IMAGE_TOPIC",
    "SUPPORTED_ENCODINGS",
    "BagFile",
    "BagMessage",
    "BagReader",
    "Frame",
    "GroundTruth",
    "GtMode",
    "ImageFolderReader",
    "RawRos2BagWriter",
    "Ros1SequenceWriter",
    "Ros2SequenceWriter",
    "SequenceReader",
    "TumFolderReader",
    "TumFolderWriter",
    "WarningCounter",
    "Window",
    "WindowBuilder",
    "WindowConfig",
    "associate",
    "bag_topics",
    "decode_image",
    "decode_image_rgb8",
    "encode_image",
    "iter_windows",
    "load_window_config",
    "open_sequence",
    "read_bag_trajectory",
    "read_tum_list",
    "read_tum_trajectory",
    "synth",
    "to_rgb8",
    "window_indices",
    "write_tum_list",
    "write_tum_trajectory",
]
