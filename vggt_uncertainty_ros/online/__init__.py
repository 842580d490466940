"""The node's ROS-free runtime: windowing and chaining, the inference worker, the estimator.

``ros/`` is a thin adapter over this package; everything here runs and is tested without rclpy.
"""
