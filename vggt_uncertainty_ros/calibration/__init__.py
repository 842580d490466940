"""Calibration metrics (numpy + scipy.stats) and trajectory metrics (evo).

``from vggt_uncertainty_ros.calibration import calibration_metrics, D2_ROT_MEAN`` gives the
uncertainty-calibration API of :mod:`~vggt_uncertainty_ros.calibration.metrics`; the
trajectory metrics live in :mod:`vggt_uncertainty_ros.calibration.trajectory` (imported on
its own so that this package does not pull in evo).
"""

from vggt_uncertainty_ros.calibration.metrics import *
from vggt_uncertainty_ros.calibration.metrics import __all__ as _metrics_all

__all__ = list(_metrics_all)
