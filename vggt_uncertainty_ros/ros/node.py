"""Entry point of ``vggt_uncertainty_node`` (console script, ``python -m``, ``ros2 run/launch``).

This module is deliberately tiny: :func:`main` installs the SIGINT/SIGTERM handling
(:class:`~vggt_uncertainty_ros.ros.shutdown.ShutdownGuard`) *before* importing rclpy, torch
and the model, so a signal during imports or model loading also ends with exit status 0 and no
traceback. The node itself is :mod:`vggt_uncertainty_ros.ros.vggt_node`; its public names
(``VggtUncertaintyNode``, ``build_estimator``, ``NODE_NAME``) are re-exported here lazily.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from vggt_uncertainty_ros.ros.shutdown import ShutdownGuard

_log = logging.getLogger("vggt_uncertainty_node")


def main(args: list[str] | None = None) -> int:
    """Run the node; returns the exit status (0 after SIGINT/SIGTERM, 1 when it cannot start).

    Args:
        args: command line (``--ros-args ...``); ``sys.argv`` when None.
    """
    guard = ShutdownGuard()
    guard.install()
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [%(name)s]: %(message)s")
    _log.info("starting (signal handlers installed)")
    # imported here, after the handlers: rclpy, torch and the model take seconds to load
    from vggt_uncertainty_ros.ros import vggt_node

    return vggt_node.run(args, guard)


def __getattr__(name: str) -> Any:
    if name in ("VggtUncertaintyNode", "build_estimator", "NODE_NAME"):
        from vggt_uncertainty_ros.ros import vggt_node

        return getattr(vggt_node, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(main())
