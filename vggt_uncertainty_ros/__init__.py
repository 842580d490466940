"""vggt_uncertainty_ros: calibrated 6-DOF pose measurements from a monocular camera.

The package is layered (see docs/ARCHITECTURE.md):

* ``geometry`` and ``calibration``: numpy-first math (torch accepted where noted);
* ``data``: TUM folders, ROS 1 / ROS 2 bags, synthetic sequences, windowing;
* ``model``: our VGGT aggregator + camera head; ``head``: the uncertainty head;
* ``trainer``, ``evaluate``: library parts of the offline tools;
* ``ros``: the only sub-package that imports rclpy;
* ``cli``: argparse front ends over all of the above.
"""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
