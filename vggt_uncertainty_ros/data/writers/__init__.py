"""Writers: TUM-layout sequences frame by frame (TUM folders, ROS 1 bags, ROS 2 bags) and raw ROS 2 bags.

The three sequence writers offer ``write_pose(stamp_ns, T_world_cam)``, ``write_rgb(stamp_ns, rgb)``,
``write_depth(stamp_ns, depth_m)`` and ``close()`` (context managers), which is what
:func:`~vggt_uncertainty_ros.data.synth.generate` needs. :class:`RawRos2BagWriter` stores
already-serialised messages (the bag recorder of ``ros/replay.py``).
"""

from vggt_uncertainty_ros.data.writers.bag import RawRos2BagWriter, Ros1SequenceWriter, Ros2SequenceWriter
from vggt_uncertainty_ros.data.writers.tum_folder import TumFolderWriter, depth_to_tum_png

__all__ = ["RawRos2BagWriter", "Ros1SequenceWriter", "Ros2SequenceWriter", "TumFolderWriter", "depth_to_tum_png"]
