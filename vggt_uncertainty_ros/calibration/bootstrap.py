"""Block-bootstrap confidence intervals and the per-block summary of unseen-sequence reports.

Frames are not independent samples: the frames of a window share frame 0 (one bad reference
spoils all of them) and consecutive windows overlap (stride < size), so a frame-level
bootstrap gives intervals that are far too narrow. :func:`block_bootstrap_ci` resamples
*windows* in blocks of ``L`` consecutive windows (moving-block bootstrap, Künsch 1989) and
recomputes the statistic over all frames of the drawn windows. The default block length
covers every window that shares a frame with the first one (``ceil(size/stride)``) and at
least ``round(W^(1/3))`` windows, the usual rate for the moving-block bootstrap.

Inputs are in our order ``[rot (3), trans (3)]`` (docs/ARCHITECTURE.md); variances in the
units of the residuals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from vggt_uncertainty_ros.calibration.metrics import CHI2_3, block_metrics
from vggt_uncertainty_ros.errors import CalibrationError

__all__ = [
    "block_bootstrap_ci",
    "default_block_length",
    "format_summary_table",
    "unseen_block_summary",
    "unseen_summary",
    "window_mean_cis",
]


def default_block_length(n_windows: int, window_size: int | None = None, stride: int | None = None) -> int:
    """Block length (windows): ``max(ceil(size/stride), round(W^(1/3)), 1)``, at most ``W``."""
    overlap = math.ceil(window_size / stride) if window_size and stride else 1
    return int(max(1, min(n_windows, max(overlap, round(n_windows ** (1.0 / 3.0))))))


def block_bootstrap_ci(
    window_sums: np.ndarray,
    window_counts: np.ndarray,
    *,
    block_length: int,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    statistic: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> tuple[float, float]:
    """Percentile interval of a ratio statistic under a circular moving-block bootstrap.

    Args:
        window_sums: ``[W]`` (or ``[W, k]``) per-window sums of the per-frame quantity (e.g.
            Σ d² over the window's scored frames), windows in time order.
        window_counts: ``[W]`` scored frames per window (0 allowed).
        block_length: windows per block (see :func:`default_block_length`).
        n_boot: bootstrap replicates.
        level: interval level.
        seed: RNG seed (deterministic output).
        statistic: ``f(sums[n_boot, ...], counts[n_boot]) -> [n_boot]``; default the mean
            per frame ``sums / counts``.

    Returns:
        ``(lo, hi)``; ``(nan, nan)`` when fewer than 2 windows hold a scored frame.
    """
    sums = np.asarray(window_sums, dtype=np.float64)
    counts = np.asarray(window_counts, dtype=np.float64)
    w = counts.shape[0]
    if sums.shape[0] != w or counts.ndim != 1:
        raise CalibrationError(f"window_sums [W,...] and window_counts [W] disagree: {sums.shape}, {counts.shape}")
    if not 0 < level < 1 or n_boot < 1 or block_length < 1:
        raise CalibrationError(f"invalid bootstrap settings level={level}, n_boot={n_boot}, block={block_length}")
    if np.count_nonzero(counts) < 2:
        return math.nan, math.nan
    length = min(block_length, w)
    n_blocks = math.ceil(w / length)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, w, size=(n_boot, n_blocks))
    idx = (starts[:, :, None] + np.arange(length)[None, None, :]).reshape(n_boot, -1)[:, :w] % w  # circular
    boot_sums = sums[idx].sum(axis=1)
    boot_counts = counts[idx].sum(axis=1)
    if statistic is None:
        with np.errstate(invalid="ignore", divide="ignore"):
            values = boot_sums / boot_counts
    else:
        values = np.asarray(statistic(boot_sums, boot_counts), dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan
    alpha = 1.0 - level
    lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def window_mean_cis(
    d2: np.ndarray,
    window: np.ndarray,
    *,
    block_length: int,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[tuple[float, float], dict[str, tuple[float, float]]]:
    """Block-bootstrap intervals of the d² mean and of each coverage level of the same frames.

    Args:
        d2: ``[N]`` per-frame Mahalanobis d² (3 degrees of freedom).
        window: ``[N]`` window index of each frame, time order (any integers).
        block_length: bootstrap block length in windows.
        n_boot: bootstrap replicates.
        seed: bootstrap seed; every statistic resamples the same blocks.

    Returns:
        ``((lo, hi) of the d² mean, {"68"|"95"|"99": (lo, hi) of the fraction d² ≤ χ²₃
        quantile})``, 95 % percentile intervals; NaN when fewer than 2 windows hold a frame.
    """
    d2 = np.asarray(d2, dtype=np.float64).reshape(-1)
    _, inverse = np.unique(np.asarray(window).reshape(-1), return_inverse=True)
    counts = np.bincount(inverse).astype(np.float64)

    def ci(values: np.ndarray) -> tuple[float, float]:
        sums = np.bincount(inverse, weights=values)
        return block_bootstrap_ci(sums, counts, block_length=block_length, n_boot=n_boot, seed=seed)

    return ci(d2), {key: ci((d2 <= q).astype(np.float64)) for key, q in CHI2_3.items()}


def unseen_block_summary(
    r: np.ndarray,
    var: np.ndarray,
    window: np.ndarray,
    *,
    block_length: int,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, object]:
    """The per-block record of ``unseen.json`` (issue 12) for one sequence or a pool.

    Args:
        r: ``[N, 3]`` residual block of the scored frames.
        var: ``[N, 3]`` predicted variances of the same frames.
        window: ``[N]`` int window index of each frame (windows of different sequences must
            have different indices; order = time order within a sequence).
        block_length: bootstrap block length in windows.
        n_boot: bootstrap replicates.
        seed: bootstrap seed.

    Returns:
        ``{"d2_mean", "d2_ci95": [lo, hi], "coverage": {"68","95","99"},
        "coverage_ci95": {"68","95","99": [lo, hi]}, "spearman", "nll_per_dof", "n_frames"}``
        (intervals: :func:`window_mean_cis`); NaN statistics (and ``n_frames`` 0) when ``N = 0``.
    """
    r = np.asarray(r, dtype=np.float64).reshape(-1, 3)
    var = np.asarray(var, dtype=np.float64).reshape(-1, 3)
    window = np.asarray(window).reshape(-1)
    if r.shape[0] == 0:
        nan = math.nan
        return {
            "d2_mean": nan,
            "d2_ci95": [nan, nan],
            "coverage": {key: nan for key in CHI2_3},
            "coverage_ci95": {key: [nan, nan] for key in CHI2_3},
            "spearman": nan,
            "nll_per_dof": nan,
            "n_frames": 0,
        }
    m = block_metrics(r, var, log_var_bounds=None)
    d2_ci, cov_ci = window_mean_cis(
        np.sum(r * r / var, axis=-1), window, block_length=block_length, n_boot=n_boot, seed=seed
    )
    return {
        "d2_mean": m.d2_mean,
        "d2_ci95": list(d2_ci),
        "coverage": dict(m.coverage),
        "coverage_ci95": {key: list(v) for key, v in cov_ci.items()},
        "spearman": m.spearman,
        "nll_per_dof": m.nll_per_dof,
        "n_frames": int(m.n),
    }


def unseen_summary(
    sequences: Mapping[str, Mapping[str, np.ndarray]],
    *,
    block_length: int,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, object]]:
    """Per-sequence and pooled :func:`unseen_block_summary` of both blocks.

    Args:
        sequences: ``{name: {"r": [N, 6], "log_var": [N, 6], "window": [N] int,
            "trans_valid": [N] bool}}``: residuals (rot rad, trans m) and log σ² in the same
            units; frames whose ``trans_valid`` is False (scale protocol) are left out of the
            translation block.
        block_length: bootstrap block length in windows.
        n_boot: bootstrap replicates.
        seed: bootstrap seed.

    Returns:
        ``{"sequences": {name: {"rot": {...}, "trans": {...}}}, "pooled": {"rot", "trans"}}``.
    """
    per: dict[str, object] = {}
    pooled: dict[str, list[np.ndarray]] = {"r": [], "log_var": [], "window": [], "trans_valid": []}
    offset = 0
    for name in sorted(sequences):
        s = sequences[name]
        r = np.asarray(s["r"], dtype=np.float64).reshape(-1, 6)
        lv = np.asarray(s["log_var"], dtype=np.float64).reshape(-1, 6)
        win = np.asarray(s["window"], dtype=np.int64).reshape(-1)
        tv = np.asarray(s.get("trans_valid", np.ones(len(r), bool)), dtype=bool).reshape(-1)
        per[name] = _both_blocks(r, lv, win, tv, block_length, n_boot, seed)
        pooled["r"].append(r)
        pooled["log_var"].append(lv)
        pooled["window"].append(win - (win.min() if win.size else 0) + offset)
        pooled["trans_valid"].append(tv)
        offset += int(win.max() - win.min() + 1) if win.size else 0
    cat = {k: np.concatenate(v) if v else np.zeros((0,)) for k, v in pooled.items()}
    return {
        "sequences": per,
        "pooled": _both_blocks(
            cat["r"].reshape(-1, 6),
            cat["log_var"].reshape(-1, 6),
            cat["window"],
            cat["trans_valid"].astype(bool),
            block_length,
            n_boot,
            seed,
        ),
    }


def _both_blocks(
    r: np.ndarray, lv: np.ndarray, win: np.ndarray, tv: np.ndarray, block_length: int, n_boot: int, seed: int
) -> dict[str, object]:
    return {
        "rot": unseen_block_summary(
            r[:, :3], np.exp(lv[:, :3]), win, block_length=block_length, n_boot=n_boot, seed=seed
        ),
        "trans": unseen_block_summary(
            r[tv, 3:], np.exp(lv[tv, 3:]), win[tv], block_length=block_length, n_boot=n_boot, seed=seed
        ),
    }


def format_summary_table(summary: Mapping[str, Any], title: str = "") -> str:
    """Plain-text table (one row per sequence and block, then the pool) for terminals and logs."""
    lines = [title] if title else []
    lines.append(
        f"{'sequence':<28} {'block':<5} {'d2 mean':>8} {'95% CI':>17} {'cov68':>6} {'cov95':>6} "
        f"{'cov99':>6} {'spearman':>8} {'nll/dof':>8} {'frames':>7}"
    )
    rows = [*summary["sequences"].items(), ("POOLED", summary["pooled"])]

    def f(x: object) -> float:  # None (JSON's NaN) prints as nan
        return math.nan if x is None else float(x)  # type: ignore[arg-type]

    for name, blocks in rows:
        for block in ("rot", "trans"):
            b = blocks[block]
            lo, hi = (f(x) for x in b["d2_ci95"])
            cov = {k: f(v) for k, v in b["coverage"].items()}
            lines.append(
                f"{name[:28]:<28} {block:<5} {f(b['d2_mean']):>8.2f} {f'[{lo:.2f}, {hi:.2f}]':>17} "
                f"{cov['68']:>6.2f} {cov['95']:>6.2f} {cov['99']:>6.2f} {f(b['spearman']):>8.2f} "
                f"{f(b['nll_per_dof']):>8.2f} {int(b['n_frames']):>7d}"
            )
    return "\n".join(lines)
