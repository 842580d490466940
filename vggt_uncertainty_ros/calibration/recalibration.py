"""Post-hoc recalibration: one variance factor per block, fitted robustly on held-out data.

A head trained on some sequences is usually mis-scaled on others by a roughly constant factor
per block (its *ranking* of frames transfers better than its absolute level). The fix is a
per-block variance multiplier ``f_blk`` applied to every predicted variance of the block:
``σ²_blk ← f_blk σ²_blk`` (``log σ² ← log σ² + log f_blk``), fitted on several validation
sequences the head was not trained on.

Fits (all robust to a heavy tail except ``mean``). For a calibrated Gaussian ``d² ~ χ²₃``:

* ``quantile`` (the default, used by the CLI, the trainer and ``bench-unseen``): the factor
  that puts the 68.27 % and the 95 % quantiles of ``d²`` on χ²₃'s (3.527 and 7.815), as the
  geometric mean of the two ratios ``f = sqrt(q68(d²)/3.527 · q95(d²)/7.815)``. Quantiles
  ignore the extreme tail (up to 5 % of gross failures with d² in the hundreds), and matching
  the two coverage levels the product is judged on keeps the bulk *and* the shoulder of the
  distribution in place; a median-only fit calibrates the centre and lets the shoulder go
  (on heavy-tailed translation it shrinks σ until coverage 95 collapses).
* ``coverage``: the factor that minimises the larger of the two coverage errors
  ``max(|c68(f) − 0.6827|, |c95(f) − 0.95|)`` (the levels the product is judged on, directly).
* ``median``: ``f = median(d²)/2.366``.
* ``mean``: ``f = mean(d²)/3`` (the naive ANEES fit, dominated by the tail), for comparison.

**Coverage floor.** Whatever the method, every fit also records that smallest achievable
``max(|c68 − 0.6827|, |c95 − 0.95|)`` on the data it was fitted on
(:attr:`Recalibration.coverage_floor`). One factor per block moves both coverages together;
when the normalised errors are heavier-tailed than Gaussian (a bulk over-covered, a tail
under-covered), no factor puts both levels on target, and the floor says by how many points
at best, in-sample. A floor near 0 means recalibration can calibrate the block; a floor of
0.05 means ±5-point coverage is out of reach of any factor: the head's ranking of frames, not
its level, is what has to improve.

Every validation sequence gets the same total weight (each frame is weighted ``1/n_seq``), so
one long sequence cannot decide the factor alone; the per-sequence factors are kept for
reporting their spread.

Order and units follow docs/ARCHITECTURE.md: 6-vectors ``[rot (3), trans (3)]``; a factor is
dimensionless (variance ratio), so it is independent of the translation unit and of the
scale convention of the head.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from vggt_uncertainty_ros.errors import CalibrationError

__all__ = [
    "CHI2_3_MEDIAN",
    "METHODS",
    "Recalibration",
    "apply_recalibration",
    "block_factors_summary",
    "coverage_floor",
    "fit_recalibration",
    "fit_sequences",
    "weighted_median",
]

#: Median of χ²₃ (the d² of a calibrated 3-DOF block).
CHI2_3_MEDIAN = float(stats.chi2.median(3))
#: Supported fitting methods (the first is the default).
METHODS = ("quantile", "coverage", "median", "mean")
#: χ²₃ quantiles at the coverage levels the ``quantile`` fit matches.
_CHI2_3_Q = ((0.6827, float(stats.chi2.ppf(0.6827, 3))), (0.95, float(stats.chi2.ppf(0.95, 3))))
_BLOCKS = {"rot": slice(0, 3), "trans": slice(3, 6)}
logger = logging.getLogger(__name__)


def weighted_median(values: np.ndarray, weights: np.ndarray, q: float = 0.5) -> float:
    """Weighted ``q``-quantile (default the median) of ``values`` with non-negative ``weights``."""
    v = np.asarray(values, dtype=np.float64).ravel()
    w = np.asarray(weights, dtype=np.float64).ravel()
    if v.size == 0 or v.shape != w.shape or np.any(w < 0) or w.sum() <= 0:
        raise CalibrationError(f"weighted_median needs equal non-empty shapes and positive weights, got {v.shape}")
    order = np.argsort(v, kind="stable")
    cum = np.cumsum(w[order])
    return float(v[order][min(np.searchsorted(cum, q * cum[-1]), v.size - 1)])


@dataclass(frozen=True)
class Recalibration:
    """Per-block variance factors and where they came from.

    Attributes:
        factors: ``{"rot": f, "trans": f}`` variance multipliers (dimensionless, > 0).
        method: ``"quantile"`` (default), ``"median"`` or ``"mean"`` (module docstring).
        sequences: names of the validation sequences used.
        per_sequence: ``{name: {"rot": f, "trans": f}}`` factor each sequence alone would give
            (a block with no frame in a sequence is missing there).
        n_frames: ``{"rot": n, "trans": n}`` frames that entered each fit.
        coverage_floor: ``{"rot": e, "trans": e}`` the smallest ``max(|c68 − 0.6827|,
            |c95 − 0.95|)`` (fraction, 0.05 = 5 points) any factor reaches on the fitting data
            (module docstring); missing for a block without frames.
    """

    factors: dict[str, float]
    method: str = "quantile"
    sequences: list[str] = field(default_factory=list)
    per_sequence: dict[str, dict[str, float]] = field(default_factory=dict)
    n_frames: dict[str, int] = field(default_factory=dict)
    coverage_floor: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for block in _BLOCKS:
            f = self.factors.get(block)
            if f is None or not math.isfinite(float(f)) or float(f) <= 0:
                raise CalibrationError(f"recalibration factor {block!r} must be finite and > 0, got {f!r}")
        if self.method not in METHODS:
            raise CalibrationError(f"recalibration method must be one of {METHODS}, got {self.method!r}")

    @property
    def log_offsets(self) -> np.ndarray:
        """``[6]`` offsets added to ``log σ²`` in our order (rot ×3, trans ×3)."""
        return np.array([math.log(self.factors["rot"])] * 3 + [math.log(self.factors["trans"])] * 3)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (stored in the head checkpoint metadata)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recalibration:
        """Inverse of :meth:`to_dict`; raises :class:`CalibrationError` when malformed."""
        try:
            return cls(
                factors={k: float(v) for k, v in dict(data["factors"]).items()},
                method=str(data.get("method", "quantile")),
                sequences=[str(s) for s in data.get("sequences", [])],
                per_sequence={
                    str(k): {b: float(x) for b, x in v.items()} for k, v in dict(data.get("per_sequence", {})).items()
                },
                n_frames={str(k): int(v) for k, v in dict(data.get("n_frames", {})).items()},
                coverage_floor={str(k): float(v) for k, v in dict(data.get("coverage_floor", {})).items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise CalibrationError(f"malformed recalibration record {data!r}: {err}") from err


def coverage_floor(d2: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, float]:
    """The factor closest to both coverage targets, and how close it gets.

    Args:
        d2: ``[N]`` squared Mahalanobis distances of a 3-DOF block (before any factor).
        weights: ``[N]`` non-negative frame weights (default equal).

    Returns:
        ``(f, e)``: the variance factor ``f`` minimising ``e(f) = max(|c68(f) − 0.6827|,
        |c95(f) − 0.95|)``, where ``c_p(f)`` is the weighted fraction of frames with
        ``d²/f ≤ χ²₃(p)``, and that minimum ``e`` (a fraction). Exact: the coverages only
        change where some ``d²/f`` crosses a threshold, so every such crossing is tried.
    """
    v = np.asarray(d2, dtype=np.float64).ravel()
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if v.size == 0 or v.shape != w.shape or np.any(w < 0) or w.sum() <= 0 or not np.all(np.isfinite(v)):
        raise CalibrationError(f"coverage_floor needs finite d² and positive weights of one shape, got {v.shape}")
    order = np.argsort(v, kind="stable")
    v, cum = v[order], np.concatenate([[0.0], np.cumsum(w[order])]) / w.sum()
    (p68, q68), (p95, q95) = _CHI2_3_Q
    pos = v[v > 0]
    cand = np.concatenate([pos / q68, pos / q95, [1.0]])
    cand = np.concatenate([cand, np.nextafter(cand, np.inf)])  # each step's both sides

    def cov(q: float) -> np.ndarray:
        return cum[np.searchsorted(v, cand * q, side="right")]

    err = np.maximum(np.abs(cov(q68) - p68), np.abs(cov(q95) - p95))
    k = int(np.argmin(err))
    return float(cand[k]), float(err[k])


def _factor(d2: np.ndarray, weights: np.ndarray, method: str) -> float:
    if method == "coverage":
        return coverage_floor(d2, weights)[0]
    if method == "quantile":
        logs = [math.log(max(weighted_median(d2, weights, p), 1e-300) / chi) for p, chi in _CHI2_3_Q]
        return math.exp(sum(logs) / len(logs))
    if method == "median":
        return weighted_median(d2, weights) / CHI2_3_MEDIAN
    return float(np.sum(weights * d2) / np.sum(weights)) / 3.0


def fit_recalibration(
    residuals: Mapping[str, np.ndarray],
    log_vars: Mapping[str, np.ndarray],
    *,
    trans_valid: Mapping[str, np.ndarray] | None = None,
    method: str = "quantile",
) -> Recalibration:
    """Fit per-block variance factors on several validation sequences.

    Args:
        residuals: ``{sequence: r [N, 6]}`` (rot rad, trans in the unit of ``log_vars``).
        log_vars: ``{sequence: log σ² [N, 6]}`` predicted (before recalibration).
        trans_valid: ``{sequence: bool [N]}`` frames whose translation is scored (the scale
            protocol masks windows without enough motion); default all.
        method: one of :data:`METHODS` (default ``"quantile"``; see module docstring).

    Returns:
        :class:`Recalibration`.

    Raises:
        CalibrationError: no sequence, mismatched shapes, no scored frame at all, or a
            non-finite/non-positive factor. A translation block without any scored frame
            (scale protocol) keeps factor 1 with ``n_frames`` 0 and a warning.
    """
    if method not in METHODS:
        raise CalibrationError(f"recalibration method must be one of {METHODS}, got {method!r}")
    names = sorted(residuals)
    if not names or set(names) != set(log_vars):
        raise CalibrationError(
            f"residuals and log_vars must name the same non-empty sequences, got {names}, {sorted(log_vars)}"
        )
    pooled: dict[str, list[np.ndarray]] = {b: [] for b in _BLOCKS}
    weights: dict[str, list[np.ndarray]] = {b: [] for b in _BLOCKS}
    per_sequence: dict[str, dict[str, float]] = {}
    for name in names:
        r = np.asarray(residuals[name], dtype=np.float64)
        lv = np.asarray(log_vars[name], dtype=np.float64)
        if r.ndim != 2 or r.shape[1] != 6 or r.shape != lv.shape:
            raise CalibrationError(f"{name}: residuals and log_vars must be [N, 6], got {r.shape} and {lv.shape}")
        keep = {"rot": np.ones(len(r), bool), "trans": np.ones(len(r), bool)}
        if trans_valid is not None and name in trans_valid:
            keep["trans"] = np.asarray(trans_valid[name], dtype=bool).reshape(-1)
            if keep["trans"].shape != (len(r),):
                raise CalibrationError(f"{name}: trans_valid must have {len(r)} entries")
        per_sequence[name] = {}
        for block, sl in _BLOCKS.items():
            rb, lvb = r[keep[block], sl], lv[keep[block], sl]
            ok = np.all(np.isfinite(rb), -1) & np.all(np.isfinite(lvb), -1)
            d2 = np.sum(rb[ok] ** 2 * np.exp(-lvb[ok]), -1)
            if d2.size == 0:
                continue
            per_sequence[name][block] = _factor(d2, np.ones_like(d2), method)
            pooled[block].append(d2)
            weights[block].append(np.full(d2.size, 1.0 / d2.size))  # each sequence weighs the same
    factors: dict[str, float] = {}
    n_frames: dict[str, int] = {}
    floor: dict[str, float] = {}
    if not pooled["rot"]:
        raise CalibrationError(f"no scored frame in {names}; cannot fit recalibration factors")
    for block in _BLOCKS:
        if not pooled[block]:  # e.g. no window with a trustworthy scale: the block is left as trained
            logger.warning("no scored %s frame in %s: its factor stays 1 (n_frames 0 in the record)", block, names)
            factors[block], n_frames[block] = 1.0, 0
            continue
        d2, w = np.concatenate(pooled[block]), np.concatenate(weights[block])
        factors[block] = _factor(d2, w, method)
        floor[block] = coverage_floor(d2, w)[1]
        n_frames[block] = int(d2.size)
    return Recalibration(
        factors=factors,
        method=method,
        sequences=names,
        per_sequence=per_sequence,
        n_frames=n_frames,
        coverage_floor=floor,
    )


def fit_sequences(seqs: Mapping[str, Mapping[str, np.ndarray]], method: str = "quantile") -> Recalibration:
    """:func:`fit_recalibration` on per-sequence arrays in the form
    :func:`calibration.bootstrap.unseen_summary` reads (``{name: {"r", "log_var", "trans_valid", ...}}``)."""
    return fit_recalibration(
        {n: v["r"] for n, v in seqs.items()},
        {n: v["log_var"] for n, v in seqs.items()},
        trans_valid={n: v["trans_valid"] for n, v in seqs.items()},
        method=method,
    )


def apply_recalibration(log_var: np.ndarray, recal: Recalibration | None) -> np.ndarray:
    """``log σ² [..., 6]`` (rot, trans) with the factors applied (a copy; unchanged if None)."""
    lv = np.array(log_var, dtype=np.float64, copy=True)
    if recal is None:
        return lv
    if lv.shape[-1] != 6:
        raise CalibrationError(f"log_var must end in 6 components (rot, trans), got {lv.shape}")
    return lv + recal.log_offsets


def block_factors_summary(recal: Recalibration) -> str:
    """One line for logs: ``rot ×1.52 (seq a 1.40, b 1.61; coverage floor 2.1 points), trans ×0.83 (...)``."""
    parts = []
    for block in _BLOCKS:
        seqs = ", ".join(f"{n} {v[block]:.2f}" for n, v in recal.per_sequence.items() if block in v)
        if block in recal.coverage_floor:
            seqs += f"; coverage floor {100 * recal.coverage_floor[block]:.1f} points"
        parts.append(f"{block} x{recal.factors[block]:.3g} ({seqs})")
    return f"{recal.method} fit: " + "; ".join(parts)
