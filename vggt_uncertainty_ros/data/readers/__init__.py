"""Readers of sequences and bags: one streaming :class:`SequenceReader` per source kind.

* :func:`open_sequence`: detects the kind (TUM folder, ROS 1 ``.bag``, ROS 2 bag, folder of
  stamp-named images) and returns the matching reader (:class:`TumFolderReader`,
  :class:`BagReader`, :class:`ImageFolderReader`);
* :class:`BagFile`: raw and deserialised messages of any topic of a ROS 1 / ROS 2 bag, over
  ``rosbags``' ``AnyReader``, with every reader failure raised as ``DataError``;
* :func:`bag_topics`, :func:`read_bag_trajectory` (``/tf`` ground truth of a bag).
"""

from vggt_uncertainty_ros.data.readers.bag import (
    BagFile,
    BagMessage,
    BagReader,
    bag_topics,
    read_bag_trajectory,
)
from vggt_uncertainty_ros.data.readers.base import SequenceReader
from vggt_uncertainty_ros.data.readers.image_folder import ImageFolderReader
from vggt_uncertainty_ros.data.readers.sequence import open_sequence
from vggt_uncertainty_ros.data.readers.tum_folder import TumFolderReader, load_tum_depth, load_tum_rgb

__all__ = [
    "BagFile",
    "BagMessage",
    "BagReader",
    "ImageFolderReader",
    "SequenceReader",
    "TumFolderReader",
    "bag_topics",
    "load_tum_depth",
    "load_tum_rgb",
    "open_sequence",
    "read_bag_trajectory",
]
