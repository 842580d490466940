"""Library part of the evaluator (``vggt-uncertainty eval``).

``evaluate(EvalConfig(...)) -> EvalResult`` judges a recorded sequence: are the predicted
covariances calibrated (d², coverage, ANEES, NLL, Spearman per block), how good is the chained
trajectory (evo ATE/RPE, Sim(3)-aligned), and do the covariances help a GTSAM pose graph
(ATE with uniform, constant-tuned and predicted weights)? Outputs go to ``cfg.out_dir``:
``report.json``, ``frames.csv``, ``traj_est.tum``, ``traj_gt.tum``, PNG plots and
``report.md``. Submodules: ``config`` (EvalConfig), ``sources`` (model run / recorded
messages), ``residuals``, ``graph`` + ``pgo`` (trajectory and pose graph), ``report``,
``plots``, ``api``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vggt_uncertainty_ros.evaluate.config import EvalConfig, ScaleMode, SourceKind

if TYPE_CHECKING:
    from vggt_uncertainty_ros.evaluate.api import EvalResult, evaluate

__all__ = ["EvalConfig", "EvalResult", "ScaleMode", "SourceKind", "evaluate"]


def __getattr__(name: str) -> Any:
    """Import the pipeline (evo, GTSAM, matplotlib) only when it is used, not for ``--help``."""
    if name in ("EvalResult", "evaluate"):
        from vggt_uncertainty_ros.evaluate import api  # lazy on purpose: see the docstring

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
