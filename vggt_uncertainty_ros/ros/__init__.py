"""The only sub-package that imports rclpy and ROS message packages.

* :mod:`~vggt_uncertainty_ros.ros.node`: ``vggt_uncertainty_node`` (``VggtUncertaintyNode``, ``main``);
* :mod:`~vggt_uncertainty_ros.ros.params`: parameter declaration and validation;
* :mod:`~vggt_uncertainty_ros.ros.conversions`: messages <-> numpy (images, stamps, poses);
* :mod:`~vggt_uncertainty_ros.ros.diagnostics`: the ``/diagnostics`` status.

Nothing is imported here, so ``import vggt_uncertainty_ros.ros`` stays cheap; import the
submodules you need.
"""
