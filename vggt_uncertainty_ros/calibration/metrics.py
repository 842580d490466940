"""Calibration metrics of predicted pose uncertainty (numpy + scipy.stats only).

Inputs are residuals ``r = [r_rot (3), r_trans (3)]`` in our convention (right perturbation,
ground-truth camera frame, rad and metres after the scale fit — see
:mod:`vggt_uncertainty_ros.geometry.residuals`) and the predicted diagonal variances of the
same components, usually as ``log_var = log σ²`` in the same units. Each 3-DOF block
(rotation, translation) is scored separately:

* ``d² = Σ_k r_k²/σ_k²`` (squared Mahalanobis distance); a calibrated Gaussian gives
  ``d² ~ χ²₃`` (mean 3). ``d² > 3``: overconfident, ``d² < 3``: underconfident.
* coverage: fraction of ``d²`` at or below the χ²₃ quantiles 3.527 / 7.815 / 11.345
  (68.27 / 95 / 99 %).
* ANEES bounds: two-sided 95 % interval of the mean of N independent ``d²`` values,
  ``χ²(N·3)/N`` quantiles.
* NLL per degree of freedom: mean over the N·3 components of
  ``½(r²/σ² + log σ² + log 2π)`` (the full Gaussian NLL, constants included).
* Spearman rank correlation between the block RMS sigma ``σ_blk = sqrt(mean_k σ_k²)`` and
  the block residual norm ``‖r_blk‖`` of each sample.
* σ statistics (mean, p50/p90/p99) over all N·3 per-component ``σ_k``; √λ = 1/σ_k
  percentiles likewise; residual p90 over the per-sample norms ``‖r_blk‖``.
* clamp hits: fraction of per-component values at a bound of the head's parameterisation
  (``log_var`` clamped to [-20, 20]; or √λ clamped above at 200 rad⁻¹ / 100 m⁻¹).

Metric names come from one table, :data:`BLOCK_STATS` (per-block statistics, ``{b}`` = block);
:func:`metric_name`, :data:`METRIC_NAMES` and the module constants (``D2_ROT_MEAN ==
"calibration/d2_rot_mean"``, ...) are derived from it, so trainer, evaluator and charts import
names instead of retyping strings. The clamp bounds live in
:mod:`vggt_uncertainty_ros.calibration.constants` (shared with the torch head).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from vggt_uncertainty_ros.calibration.constants import BLOCKS, LOG_VAR_BOUNDS, SQRT_INFO_MAX
from vggt_uncertainty_ros.errors import CalibrationError

logger = logging.getLogger(__name__)

__all__ = [
    "TRANS_EXCLUDED_FRAMES",
    "ANEES_95_HI",
    "ANEES_95_LO",
    "BLOCKS",
    "BLOCK_STATS",
    "CHI2_3",
    "CLAMP_RTOL",
    "COVERAGE_LEVELS",
    "COVERAGE_ROT_68",
    "COVERAGE_ROT_95",
    "COVERAGE_ROT_99",
    "COVERAGE_TRANS_68",
    "COVERAGE_TRANS_95",
    "COVERAGE_TRANS_99",
    "D2_ROT_MEAN",
    "D2_ROT_MEDIAN",
    "D2_TRANS_MEAN",
    "D2_TRANS_MEDIAN",
    "GT_TRANS_NORM_MEAN",
    "LOG_VAR_BOUNDS",
    "LOG_VAR_ROT_AT_MAX",
    "LOG_VAR_ROT_AT_MIN",
    "LOG_VAR_TRANS_AT_MAX",
    "LOG_VAR_TRANS_AT_MIN",
    "METRIC_NAMES",
    "NLL_ROT_PER_DOF",
    "NLL_TRANS_PER_DOF",
    "N_SAMPLES",
    "PRED_TRANS_NORM_SCALED_MEAN",
    "RESIDUAL_ROT_P90",
    "RESIDUAL_TRANS_P90",
    "SCALE_FIT_N_VALID_MEAN",
    "SCALE_FIT_SCALE_MEAN",
    "SIGMA_ROT_MEAN",
    "SIGMA_ROT_P50",
    "SIGMA_ROT_P90",
    "SIGMA_ROT_P99",
    "SIGMA_TRANS_MEAN",
    "SIGMA_TRANS_P50",
    "SIGMA_TRANS_P90",
    "SIGMA_TRANS_P99",
    "SPEARMAN_ROT",
    "SPEARMAN_TRANS",
    "SQRT_INFO_MAX",
    "SQRT_INFO_ROT_CLAMP_HIT",
    "SQRT_INFO_ROT_P50",
    "SQRT_INFO_ROT_P90",
    "SQRT_INFO_ROT_P99",
    "SQRT_INFO_TRANS_CLAMP_HIT",
    "SQRT_INFO_TRANS_P50",
    "SQRT_INFO_TRANS_P90",
    "SQRT_INFO_TRANS_P99",
    "BlockMetrics",
    "BlockStat",
    "ScaleFitDiagnostics",
    "anees_bounds",
    "block_metrics",
    "calibration_metrics",
    "mahalanobis_d2",
    "metric_name",
]


# --------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------

CHI2_3: dict[str, float] = {"68": 3.527, "95": 7.815, "99": 11.345}
"""χ²₃ quantiles at 68.27 / 95 / 99 % (rounded to 3 decimals, as in the analysis)."""

COVERAGE_LEVELS: dict[str, float] = {"68": 0.6827, "95": 0.95, "99": 0.99}
"""Nominal probability of each key of :data:`CHI2_3`."""

CLAMP_RTOL = 1e-5
"""A value within this relative distance (at least absolute 1e-5) of a bound counts as at the bound."""


# --------------------------------------------------------------------------------------
# Metric names (keys of calibration_metrics' dict): one table, every name derived from it
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockStat:
    """One per-block statistic of :func:`calibration_metrics`.

    Attributes:
        stat: the key of :func:`metric_name` (``"d2_mean"``, ...).
        template: the metric name with ``{b}`` in place of the block (``rot``/``trans``).
        value: reads the statistic from a :class:`BlockMetrics`.
        only_for: the head parameterization it is reported for, or ``None`` for both.
    """

    stat: str
    template: str
    value: Callable[[BlockMetrics], float]
    only_for: str | None = None


BLOCK_STATS: tuple[BlockStat, ...] = (
    BlockStat("d2_mean", "calibration/d2_{b}_mean", lambda m: m.d2_mean),
    BlockStat("d2_median", "calibration/d2_{b}_median", lambda m: m.d2_median),
    BlockStat("coverage_68", "calibration/coverage_{b}_68", lambda m: m.coverage["68"]),
    BlockStat("coverage_95", "calibration/coverage_{b}_95", lambda m: m.coverage["95"]),
    BlockStat("coverage_99", "calibration/coverage_{b}_99", lambda m: m.coverage["99"]),
    BlockStat("nll_per_dof", "calibration/nll_{b}_per_dof", lambda m: m.nll_per_dof),
    BlockStat("spearman", "calibration/spearman_{b}", lambda m: m.spearman),
    BlockStat("sigma_mean", "uncertainty/sigma_{b}_mean", lambda m: m.sigma_mean),
    BlockStat("sigma_p50", "uncertainty/sigma_{b}_p50", lambda m: m.sigma_p50),
    BlockStat("sigma_p90", "uncertainty/sigma_{b}_p90", lambda m: m.sigma_p90),
    BlockStat("sigma_p99", "uncertainty/sigma_{b}_p99", lambda m: m.sigma_p99),
    BlockStat("residual_p90", "diagnostic/residual_{b}_p90", lambda m: m.residual_p90),
    BlockStat("sqrt_info_p50", "sqrt_info_{b}_p50", lambda m: m.sqrt_info_p50),
    BlockStat("sqrt_info_p90", "sqrt_info_{b}_p90", lambda m: m.sqrt_info_p90),
    BlockStat("sqrt_info_p99", "sqrt_info_{b}_p99", lambda m: m.sqrt_info_p99),
    BlockStat("log_var_at_min", "diagnostic/log_var_{b}_at_min", lambda m: m.clamp_hit_low, "log_var"),
    BlockStat("log_var_at_max", "diagnostic/log_var_{b}_at_max", lambda m: m.clamp_hit_high, "log_var"),
    BlockStat("sqrt_info_clamp_hit", "sqrt_info_{b}_clamp_hit", lambda m: m.clamp_hit_high, "sqrt_info"),
)
"""The per-block metrics, in output order; the single source of their names."""

_NAMES: dict[tuple[str, str], str] = {(b, s.stat): s.template.format(b=b) for b in BLOCKS for s in BLOCK_STATS}


def metric_name(block: str, stat: str) -> str:
    """Name of a per-block metric, e.g. ``metric_name("rot", "d2_mean") == D2_ROT_MEAN``.

    Args:
        block: ``"rot"`` or ``"trans"``.
        stat: a :data:`BLOCK_STATS` key: ``d2_mean, d2_median, coverage_{68,95,99}, nll_per_dof,
            spearman, sigma_mean, sigma_p{50,90,99}, residual_p90, sqrt_info_p{50,90,99},
            log_var_at_{min,max}, sqrt_info_clamp_hit``.

    Raises:
        CalibrationError: unknown block or statistic.
    """
    try:
        return _NAMES[block, stat]
    except KeyError:
        raise CalibrationError(
            f"unknown metric ({block!r}, {stat!r}); blocks {list(BLOCKS)}, stats {[s.stat for s in BLOCK_STATS]}"
        ) from None


# Whole-set metrics.
N_SAMPLES = "calibration/n_samples"
ANEES_95_LO = "calibration/anees_95_lo"
ANEES_95_HI = "calibration/anees_95_hi"
# Scale-fit diagnostics (with ``scale_fit``).
PRED_TRANS_NORM_SCALED_MEAN = "pred_trans_norm_scaled_mean"
GT_TRANS_NORM_MEAN = "gt_trans_norm_mean"
SCALE_FIT_N_VALID_MEAN = "scale_fit/n_valid_mean"
SCALE_FIT_SCALE_MEAN = "scale_fit/scale_mean"
#: Frames whose translation was not scored (scale protocol), in :func:`calibration_metrics`.
TRANS_EXCLUDED_FRAMES = "scale/trans_excluded_frames"

# Per-block names as importable constants (their strings come from BLOCK_STATS).
D2_ROT_MEAN = metric_name("rot", "d2_mean")
D2_TRANS_MEAN = metric_name("trans", "d2_mean")
D2_ROT_MEDIAN = metric_name("rot", "d2_median")
D2_TRANS_MEDIAN = metric_name("trans", "d2_median")
COVERAGE_ROT_68 = metric_name("rot", "coverage_68")
COVERAGE_ROT_95 = metric_name("rot", "coverage_95")
COVERAGE_ROT_99 = metric_name("rot", "coverage_99")
COVERAGE_TRANS_68 = metric_name("trans", "coverage_68")
COVERAGE_TRANS_95 = metric_name("trans", "coverage_95")
COVERAGE_TRANS_99 = metric_name("trans", "coverage_99")
NLL_ROT_PER_DOF = metric_name("rot", "nll_per_dof")
NLL_TRANS_PER_DOF = metric_name("trans", "nll_per_dof")
SPEARMAN_ROT = metric_name("rot", "spearman")
SPEARMAN_TRANS = metric_name("trans", "spearman")
SIGMA_ROT_MEAN = metric_name("rot", "sigma_mean")
SIGMA_TRANS_MEAN = metric_name("trans", "sigma_mean")
SIGMA_ROT_P50 = metric_name("rot", "sigma_p50")
SIGMA_ROT_P90 = metric_name("rot", "sigma_p90")
SIGMA_ROT_P99 = metric_name("rot", "sigma_p99")
SIGMA_TRANS_P50 = metric_name("trans", "sigma_p50")
SIGMA_TRANS_P90 = metric_name("trans", "sigma_p90")
SIGMA_TRANS_P99 = metric_name("trans", "sigma_p99")
RESIDUAL_ROT_P90 = metric_name("rot", "residual_p90")
RESIDUAL_TRANS_P90 = metric_name("trans", "residual_p90")
LOG_VAR_ROT_AT_MIN = metric_name("rot", "log_var_at_min")
LOG_VAR_ROT_AT_MAX = metric_name("rot", "log_var_at_max")
LOG_VAR_TRANS_AT_MIN = metric_name("trans", "log_var_at_min")
LOG_VAR_TRANS_AT_MAX = metric_name("trans", "log_var_at_max")
SQRT_INFO_ROT_P50 = metric_name("rot", "sqrt_info_p50")
SQRT_INFO_ROT_P90 = metric_name("rot", "sqrt_info_p90")
SQRT_INFO_ROT_P99 = metric_name("rot", "sqrt_info_p99")
SQRT_INFO_TRANS_P50 = metric_name("trans", "sqrt_info_p50")
SQRT_INFO_TRANS_P90 = metric_name("trans", "sqrt_info_p90")
SQRT_INFO_TRANS_P99 = metric_name("trans", "sqrt_info_p99")
SQRT_INFO_ROT_CLAMP_HIT = metric_name("rot", "sqrt_info_clamp_hit")
SQRT_INFO_TRANS_CLAMP_HIT = metric_name("trans", "sqrt_info_clamp_hit")

METRIC_NAMES: tuple[str, ...] = (
    N_SAMPLES,
    TRANS_EXCLUDED_FRAMES,
    ANEES_95_LO,
    ANEES_95_HI,
    *_NAMES.values(),
    PRED_TRANS_NORM_SCALED_MEAN,
    GT_TRANS_NORM_MEAN,
    SCALE_FIT_N_VALID_MEAN,
    SCALE_FIT_SCALE_MEAN,
)
"""Every name calibration_metrics can return (which appear depends on its arguments)."""


# --------------------------------------------------------------------------------------
# Elementary functions
# --------------------------------------------------------------------------------------


def mahalanobis_d2(r: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of residual blocks under diagonal covariance.

    Args:
        r: ``[..., k]`` residual components (e.g. one 3-DOF block).
        var: ``[..., k]`` variances of the same components and units (must be > 0).

    Returns:
        ``[...]`` ``d² = Σ_k r_k²/var_k``.

    Raises:
        CalibrationError: shapes differ or a variance is not positive and finite.
    """
    r = np.asarray(r, dtype=np.float64)
    var = np.asarray(var, dtype=np.float64)
    if r.shape != var.shape:
        raise CalibrationError(f"residual and variance shapes differ: {list(r.shape)} vs {list(var.shape)}")
    _check_variances(var)
    return np.sum(r * r / var, axis=-1)


def _check_variances(var: np.ndarray) -> None:
    if not np.all(np.isfinite(var)) or np.any(var <= 0):
        bad = var[~(np.isfinite(var) & (var > 0))]
        raise CalibrationError(f"variances must be positive and finite; found {bad.size} bad, e.g. {bad.flat[0]!r}")


def anees_bounds(n: int, dof: int = 3, level: float = 0.95) -> tuple[float, float]:
    """Two-sided acceptance interval of the ANEES (mean ``d²``) of ``n`` independent samples.

    ``n · ANEES ~ χ²(n·dof)`` for a calibrated estimator, so the bounds are
    ``χ²_{(1-level)/2}(n·dof)/n`` and ``χ²_{(1+level)/2}(n·dof)/n``.

    Args:
        n: number of independent samples (≥ 1).
        dof: degrees of freedom of each ``d²`` (3 per block).
        level: two-sided confidence level in (0, 1).

    Returns:
        ``(lo, hi)`` around ``dof``.

    Raises:
        CalibrationError: ``n`` or ``dof`` < 1, or ``level`` outside (0, 1).
    """
    if n < 1 or dof < 1:
        raise CalibrationError(f"anees_bounds needs n >= 1 and dof >= 1, got n={n}, dof={dof}")
    if not 0 < level < 1:
        raise CalibrationError(f"anees_bounds level must be in (0, 1), got {level}")
    alpha = 1.0 - level
    k = n * dof
    return float(stats.chi2.ppf(alpha / 2, k) / n), float(stats.chi2.ppf(1 - alpha / 2, k) / n)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); NaN if either input is constant."""
    if a.size < 2:
        return math.nan
    ra = stats.rankdata(a)
    rb = stats.rankdata(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denom = math.sqrt(float(np.dot(ra, ra)) * float(np.dot(rb, rb)))
    return float(np.dot(ra, rb) / denom) if denom > 0 else math.nan


def _fraction_at(values: np.ndarray, bound: float) -> float:
    tol = CLAMP_RTOL * max(1.0, abs(bound))
    return float(np.mean(np.abs(values - bound) <= tol))


# --------------------------------------------------------------------------------------
# Per-block metrics
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockMetrics:
    """Calibration statistics of one 3-DOF block over N samples.

    Units follow the inputs (rotation: rad; translation: metres after the scale fit).

    Attributes:
        n: number of samples N.
        d2_mean: mean ``d²`` (ANEES); 3 when calibrated.
        d2_median: median ``d²``; 2.366 when calibrated.
        coverage: fraction of ``d² ≤ CHI2_3[key]`` for keys ``"68"``, ``"95"``, ``"99"``.
        anees_bounds_95: two-sided 95 % bounds of ``d2_mean`` for N samples.
        nll_per_dof: full Gaussian NLL averaged over the N·3 components.
        spearman: Spearman correlation of block RMS σ with ``‖r_blk‖`` (NaN if constant).
        sigma_mean, sigma_p50, sigma_p90, sigma_p99: statistics of the N·3 component σ.
        sqrt_info_p50, sqrt_info_p90, sqrt_info_p99: percentiles of the N·3 values √λ = 1/σ.
        residual_p90: 90th percentile of ``‖r_blk‖``.
        clamp_hit_low: fraction of components at the lower bound (``log_var`` at its minimum);
            0.0 when the parameterisation has no lower bound (``sqrt_info``, or no bounds).
        clamp_hit_high: fraction at the upper bound (``log_var`` at its maximum, or √λ at its
            upper clamp); 0.0 when no bound was given.
    """

    n: int
    d2_mean: float
    d2_median: float
    coverage: dict[str, float]
    anees_bounds_95: tuple[float, float]
    nll_per_dof: float
    spearman: float
    sigma_mean: float
    sigma_p50: float
    sigma_p90: float
    sigma_p99: float
    sqrt_info_p50: float
    sqrt_info_p90: float
    sqrt_info_p99: float
    residual_p90: float
    clamp_hit_low: float
    clamp_hit_high: float


def block_metrics(
    r: np.ndarray,
    var: np.ndarray,
    *,
    log_var_bounds: tuple[float, float] | None = LOG_VAR_BOUNDS,
    sqrt_info_bound: float | None = None,
    log_var_head: np.ndarray | None = None,
) -> BlockMetrics:
    """Calibration statistics of one block.

    Args:
        r: ``[N, 3]`` residual block.
        var: ``[N, 3]`` predicted variances of the block (same units squared, > 0).
        log_var_bounds: ``(lo, hi)`` clamp of the ``log_var`` head; clamp hits are counted on
            ``log(var)`` (or ``log_var_head``). Ignored when ``sqrt_info_bound`` is given.
        sqrt_info_bound: upper clamp of √λ for a ``sqrt_info`` head; when given, only
            ``clamp_hit_high`` (√λ at the bound) is counted and ``clamp_hit_low`` is 0.0.
        log_var_head: ``[N, 3]`` the head's own output before any scale conversion, used for
            clamp counting (defaults to ``log(var)``); the bounds apply to this raw output.

    Returns:
        :class:`BlockMetrics`.

    Raises:
        CalibrationError: shapes are not ``[N, 3]`` with N ≥ 1, or variances are not > 0.
    """
    r = np.asarray(r, dtype=np.float64)
    var = np.asarray(var, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] != 3 or r.shape != var.shape or r.shape[0] < 1:
        raise CalibrationError(
            f"block_metrics needs r and var of equal shape [N>=1, 3], got {list(r.shape)} and {list(var.shape)}"
        )
    _check_variances(var)
    n = r.shape[0]
    d2 = mahalanobis_d2(r, var)
    sigma = np.sqrt(var)
    sqrt_info = 1.0 / sigma
    r_norm = np.linalg.norm(r, axis=-1)
    sigma_blk = np.sqrt(np.mean(var, axis=-1))
    nll = 0.5 * (r * r / var + np.log(var) + math.log(2 * math.pi))

    raw = np.log(var) if log_var_head is None else np.asarray(log_var_head, dtype=np.float64)
    if raw.shape != r.shape:
        raise CalibrationError(f"log_var_head must have shape {list(r.shape)}, got {list(raw.shape)}")
    if sqrt_info_bound is not None:
        low, high = 0.0, _fraction_at(np.exp(-0.5 * raw), sqrt_info_bound)
    elif log_var_bounds is not None:
        low, high = _fraction_at(raw, log_var_bounds[0]), _fraction_at(raw, log_var_bounds[1])
    else:
        low = high = 0.0

    s50, s90, s99 = np.percentile(sigma, [50, 90, 99])
    i50, i90, i99 = np.percentile(sqrt_info, [50, 90, 99])
    return BlockMetrics(
        n=n,
        d2_mean=float(d2.mean()),
        d2_median=float(np.median(d2)),
        coverage={key: float(np.mean(d2 <= q)) for key, q in CHI2_3.items()},
        anees_bounds_95=anees_bounds(n, 3, 0.95),
        nll_per_dof=float(nll.mean()),
        spearman=_spearman(sigma_blk, r_norm),
        sigma_mean=float(sigma.mean()),
        sigma_p50=float(s50),
        sigma_p90=float(s90),
        sigma_p99=float(s99),
        sqrt_info_p50=float(i50),
        sqrt_info_p90=float(i90),
        sqrt_info_p99=float(i99),
        residual_p90=float(np.percentile(r_norm, 90)),
        clamp_hit_low=low,
        clamp_hit_high=high,
    )


# --------------------------------------------------------------------------------------
# Scale-fit diagnostics and the flat metrics dict
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScaleFitDiagnostics:
    """Health of the per-window scale fit.

    Attributes:
        scale: ``[W]`` fitted scale per window.
        n_valid: ``[W]`` frames per window with ground-truth motion above the threshold, or
            ``None`` when unknown (the metric is then left out).
        pred_trans_norm_scaled: ``[M]`` ``‖s·t_pred‖`` of the scored frames (metres).
        gt_trans_norm: ``[M]`` ``‖t_gt‖`` of the same frames (metres).
    """

    scale: np.ndarray
    n_valid: np.ndarray | None
    pred_trans_norm_scaled: np.ndarray
    gt_trans_norm: np.ndarray

    @classmethod
    def from_translations(
        cls,
        scale: np.ndarray,
        t_gt: np.ndarray,
        t_pred_scaled: np.ndarray,
        n_valid: np.ndarray | None = None,
    ) -> ScaleFitDiagnostics:
        """Build from window translations of the scored frames.

        Args:
            scale: ``[W]`` fitted scales.
            t_gt: ``[..., 3]`` ground-truth ``T_0_i`` translations of the scored frames (pass
                window frames ``i > 0`` only, as for the residuals; every row is used).
            t_pred_scaled: same shape, predicted translations multiplied by the scale.
            n_valid: ``[W]`` valid-frame counts, optional.

        Raises:
            CalibrationError: shapes disagree.
        """
        t_gt = np.asarray(t_gt, dtype=np.float64)
        t_pred = np.asarray(t_pred_scaled, dtype=np.float64)
        if t_gt.shape != t_pred.shape or t_gt.shape[-1:] != (3,):
            raise CalibrationError(
                "t_gt and t_pred_scaled must have equal shapes [..., 3], "
                f"got {list(t_gt.shape)} and {list(t_pred.shape)}"
            )
        return cls(
            scale=np.asarray(scale, dtype=np.float64).reshape(-1),
            n_valid=None if n_valid is None else np.asarray(n_valid, dtype=np.float64).reshape(-1),
            pred_trans_norm_scaled=np.linalg.norm(t_pred, axis=-1).reshape(-1),
            gt_trans_norm=np.linalg.norm(t_gt, axis=-1).reshape(-1),
        )


def _scale_fit_metrics(scale_fit: ScaleFitDiagnostics | Mapping[str, np.ndarray]) -> dict[str, float]:
    if isinstance(scale_fit, Mapping):
        try:
            scale_fit = ScaleFitDiagnostics.from_translations(
                scale_fit["scale"], scale_fit["t_gt"], scale_fit["t_pred_scaled"], scale_fit.get("n_valid")
            )
        except KeyError as err:
            raise CalibrationError(
                f"scale_fit mapping needs keys scale, t_gt, t_pred_scaled (n_valid optional); missing {err}"
            ) from None

    def mean(x: np.ndarray) -> float:
        return float(np.mean(x)) if x.size else math.nan

    out = {
        PRED_TRANS_NORM_SCALED_MEAN: mean(scale_fit.pred_trans_norm_scaled),
        GT_TRANS_NORM_MEAN: mean(scale_fit.gt_trans_norm),
        SCALE_FIT_SCALE_MEAN: mean(scale_fit.scale),
    }
    if scale_fit.n_valid is not None:
        out[SCALE_FIT_N_VALID_MEAN] = mean(scale_fit.n_valid)
    return out


def calibration_metrics(
    r: np.ndarray,
    log_var: np.ndarray,
    *,
    parameterization: Literal["log_var", "sqrt_info"] = "log_var",
    scale_fit: ScaleFitDiagnostics | Mapping[str, np.ndarray] | None = None,
    log_var_head: np.ndarray | None = None,
    log_var_bounds: tuple[float, float] = LOG_VAR_BOUNDS,
    sqrt_info_bounds: tuple[float, float] = SQRT_INFO_MAX,
    trans_valid: np.ndarray | None = None,
) -> dict[str, float]:
    """All calibration metrics of a set of 6-DOF residuals, keyed by the analysis' names.

    Pass only scored frames (window frames ``i > 0``; frame 0 is the reference).

    Args:
        r: ``[N, 6]`` residuals ``[rot (rad), trans (m or VGGT units)]``.
        log_var: ``[N, 6]`` predicted ``log σ²`` in the units of ``r`` (after any scale
            conversion ``log_var + 2 log s``).
        parameterization: the head's ``"log_var"`` or ``"sqrt_info"``; selects which clamp
            diagnostics are reported (``diagnostic/log_var_*_at_{min,max}`` or
            ``sqrt_info_*_clamp_hit``).
        scale_fit: optional :class:`ScaleFitDiagnostics`, or a mapping with ``scale [W]``,
            ``t_gt [..., 3]``, ``t_pred_scaled [..., 3]`` (scored frames only) and optionally
            ``n_valid [W]`` (see :meth:`ScaleFitDiagnostics.from_translations`); adds the
            scale-fit metrics.
        log_var_head: ``[N, 6]`` raw head output before scale conversion, for clamp counting
            (defaults to ``log_var``).
        log_var_bounds: clamp of a ``log_var`` head.
        sqrt_info_bounds: upper clamps of √λ (rotation, translation) for a ``sqrt_info`` head.
        trans_valid: ``[N]`` bool, rows whose translation is scored (scale protocol: windows
            without a trustworthy scale are excluded); the translation metrics are NaN when
            no row is, and ``scale/trans_excluded_frames`` counts the excluded rows.

    Returns:
        Flat ``{name: float}`` with the names of this module's constants.

    Raises:
        CalibrationError: bad shapes, non-finite ``log_var`` or unknown parameterisation.
    """
    if parameterization not in ("log_var", "sqrt_info"):
        raise CalibrationError(f"parameterization must be 'log_var' or 'sqrt_info', got {parameterization!r}")
    r = np.asarray(r, dtype=np.float64)
    log_var = np.asarray(log_var, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] != 6 or r.shape != log_var.shape:
        raise CalibrationError(f"r and log_var must both be [N, 6], got {list(r.shape)} and {list(log_var.shape)}")
    if not np.all(np.isfinite(log_var)):
        raise CalibrationError("log_var has non-finite values")
    raw = log_var if log_var_head is None else np.asarray(log_var_head, dtype=np.float64)
    if raw.shape != r.shape:
        raise CalibrationError(f"log_var_head must be [N, 6] like r, got {list(raw.shape)}")

    out: dict[str, float] = {N_SAMPLES: float(r.shape[0])}
    rows_trans = np.ones(r.shape[0], bool) if trans_valid is None else np.asarray(trans_valid, bool).reshape(-1)
    if rows_trans.shape != (r.shape[0],):
        raise CalibrationError(f"trans_valid must have {r.shape[0]} entries, got {rows_trans.shape}")
    out[TRANS_EXCLUDED_FRAMES] = float(np.count_nonzero(~rows_trans))
    for i, block in enumerate(BLOCKS):
        sl = slice(3 * i, 3 * i + 3)
        rows = rows_trans if block == "trans" else np.ones(r.shape[0], bool)
        if not rows.any():
            out.update(
                {
                    stat.template.format(b=block): math.nan
                    for stat in BLOCK_STATS
                    if stat.only_for in (None, parameterization)
                }
            )
            continue
        sqrt_bound = sqrt_info_bounds[i] if parameterization == "sqrt_info" else None
        m = block_metrics(
            r[rows, sl],
            np.exp(log_var[rows, sl]),
            log_var_bounds=log_var_bounds,
            sqrt_info_bound=sqrt_bound,
            log_var_head=raw[rows, sl],
        )
        for stat in BLOCK_STATS:
            if stat.only_for in (None, parameterization):
                out[stat.template.format(b=block)] = stat.value(m)
        out[ANEES_95_LO], out[ANEES_95_HI] = m.anees_bounds_95
    if scale_fit is not None:
        out.update(_scale_fit_metrics(scale_fit))
    return out
