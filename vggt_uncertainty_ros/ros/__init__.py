"""The only sub-package that imports rclpy and ROS message packages.

* :mod:`~vggt_uncertainty_ros.ros.node`: the ``vggt_uncertainty_node`` entry point (``main``; signal
  handling before any heavy import), :mod:`~vggt_uncertainty_ros.ros.vggt_node` the node itself
  (``VggtUncertaintyNode``), :mod:`~vggt_uncertainty_ros.ros.shutdown` SIGINT/SIGTERM handling;
* :mod:`~vggt_uncertainty_ros.ros.params`: parameter declaration and validation;
* :mod:`~vggt_uncertainty_ros.ros.conversions`: messages <-> numpy (images, stamps, poses);
* :mod:`~vggt_uncertainty_ros.ros.diagnostics`: the ``/diagnostics`` status.

Nothing is imported here, so ``import vggt_uncertainty_ros.ros`` stays cheap; import the
submodules you need.
"""
