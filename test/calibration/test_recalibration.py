"""Post-hoc recalibration (robust per-block factors) and the window block bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from vggt_uncertainty_ros.calibration.bootstrap import (
    block_bootstrap_ci,
    default_block_length,
    unseen_block_summary,
    window_mean_cis,
)
from vggt_uncertainty_ros.calibration.metrics import CHI2_3, COVERAGE_LEVELS
from vggt_uncertainty_ros.calibration.recalibration import (
    CHI2_3_MEDIAN,
    METHODS,
    Recalibration,
    apply_recalibration,
    coverage_floor,
    fit_recalibration,
    weighted_median,
)
from vggt_uncertainty_ros.errors import CalibrationError


def _sequence(
    rng: np.random.Generator,
    n: int,
    true_sigma: tuple[float, float],
    pred_sigma: tuple[float, float],
    outliers: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    sig = np.array([true_sigma[0]] * 3 + [true_sigma[1]] * 3)
    r = rng.normal(size=(n, 6)) * sig
    k = int(outliers * n)
    r[:k] *= 100.0  # gross failures: heavy tail
    lv = np.log(np.array([pred_sigma[0]] * 3 + [pred_sigma[1]] * 3) ** 2) * np.ones((n, 6))
    return r, lv


def test_median_fit_recovers_the_factor_despite_heavy_tails() -> None:
    rng = np.random.default_rng(0)
    res, lvs = {}, {}
    for name in ("a", "b", "c"):
        res[name], lvs[name] = _sequence(rng, 4000, (0.02, 0.05), (0.01, 0.1), outliers=0.05)
    recal = fit_recalibration(res, lvs, method="median")
    # true variance / predicted = 4 (rot), 0.25 (trans); 5 % outliers shift the median a little
    assert recal.factors["rot"] == pytest.approx(4.0, rel=0.12)
    assert recal.factors["trans"] == pytest.approx(0.25, rel=0.12)
    naive = fit_recalibration(res, lvs, method="mean")
    assert naive.factors["rot"] > 100.0  # the mean is ruined by the tail
    after = {n: apply_recalibration(lvs[n], recal) for n in res}
    d2 = np.concatenate([np.sum(res[n][:, :3] ** 2 * np.exp(-after[n][:, :3]), -1) for n in res])
    assert np.median(d2) == pytest.approx(CHI2_3_MEDIAN, rel=0.1)
    assert set(recal.per_sequence) == {"a", "b", "c"} and recal.n_frames == {"rot": 12000, "trans": 12000}
    # the default quantile fit: robust too (a 5 % tail reaches the 95 % quantile only at its edge)
    q = fit_recalibration(res, lvs)
    assert q.method == "quantile" and 3.0 < q.factors["rot"] < 10.0  # the mean fit gives > 100


def test_each_sequence_weighs_the_same_and_masked_translation_is_ignored() -> None:
    rng = np.random.default_rng(1)
    r_long, lv_long = _sequence(rng, 9000, (0.01, 0.01), (0.01, 0.01))
    r_short, lv_short = _sequence(rng, 1000, (0.03, 0.03), (0.01, 0.01))
    recal = fit_recalibration({"long": r_long, "short": r_short}, {"long": lv_long, "short": lv_short})
    # frame-weighted the long sequence would dominate (factor near 1); sequence-weighted it lies between 1 and 9
    assert 1.5 < recal.factors["rot"] < 9.0
    valid = np.zeros(1000, bool)
    valid[:10] = True
    r_short[10:, 3:] = 1e3  # unscored frames with absurd translation residuals
    masked = fit_recalibration({"short": r_short}, {"short": lv_short}, trans_valid={"short": valid})
    assert masked.n_frames["trans"] == 10 and masked.factors["trans"] < 100.0


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(CalibrationError):
        fit_recalibration({}, {})
    with pytest.raises(CalibrationError):
        fit_recalibration({"a": np.zeros((3, 6))}, {"a": np.zeros((3, 5))})
    no_trans = fit_recalibration({"a": np.ones((3, 6))}, {"a": np.zeros((3, 6))}, trans_valid={"a": np.zeros(3, bool)})
    assert no_trans.factors["trans"] == 1.0 and no_trans.n_frames["trans"] == 0
    with pytest.raises(CalibrationError):
        Recalibration(factors={"rot": 0.0, "trans": 1.0})
    with pytest.raises(CalibrationError):
        Recalibration.from_dict({"method": "median"})


def _coverage_error(d2: np.ndarray, f: float) -> float:
    q68, q95 = stats.chi2.ppf([0.6827, 0.95], 3)
    return max(abs(np.mean(d2 / f <= q68) - 0.6827), abs(np.mean(d2 / f <= q95) - 0.95))


def test_coverage_floor_is_exact_and_separates_gaussian_from_heavy_tails() -> None:
    rng = np.random.default_rng(3)
    gauss = 4.0 * rng.chisquare(3, 20000)
    f, floor = coverage_floor(gauss)
    assert f == pytest.approx(4.0, rel=0.05) and floor < 0.005  # a Gaussian block: one factor fits both levels
    # a scale mixture (each frame's true σ off by a log-normal factor): bulk over-, tail under-covered
    mix = rng.chisquare(3, 2000) * np.exp(rng.normal(0.0, 1.0, 2000))
    f, floor = coverage_floor(mix)
    assert floor > 0.05
    assert _coverage_error(mix, f) == pytest.approx(floor, abs=1e-12)
    grid = np.exp(np.linspace(-4.0, 4.0, 4001))
    assert min(_coverage_error(mix, g) for g in grid) >= floor - 1e-12  # no factor does better
    # every fit records it, whatever its method; the "coverage" method is the minimiser itself
    r = np.sqrt(mix[:, None] / 3.0) * np.ones((1, 6))
    for method in METHODS:
        rec = fit_recalibration({"a": r}, {"a": np.zeros_like(r)}, method=method)
        assert rec.coverage_floor["rot"] == pytest.approx(floor, abs=1e-9)
    rec = fit_recalibration({"a": r}, {"a": np.zeros_like(r)}, method="coverage")
    assert rec.factors["rot"] == pytest.approx(f, rel=1e-9)
    with pytest.raises(CalibrationError):
        coverage_floor(np.array([1.0, np.nan]))


def test_round_trip_and_apply() -> None:
    recal = Recalibration(factors={"rot": 2.0, "trans": 0.5}, sequences=["x"], n_frames={"rot": 3, "trans": 2})
    again = Recalibration.from_dict(recal.to_dict())
    assert again == recal
    floored = Recalibration(factors={"rot": 2.0, "trans": 0.5}, coverage_floor={"rot": 0.05, "trans": 0.07})
    assert Recalibration.from_dict(floored.to_dict()) == floored
    lv = np.zeros((4, 6))
    out = apply_recalibration(lv, again)
    np.testing.assert_allclose(np.exp(out[0]), [2, 2, 2, 0.5, 0.5, 0.5])
    np.testing.assert_array_equal(apply_recalibration(lv, None), lv)


def test_weighted_median() -> None:
    assert weighted_median(np.array([1.0, 2.0, 3.0]), np.ones(3)) == 2.0
    assert weighted_median(np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.0, 1.0])) == 3.0


def _correlated_windows(rng: np.random.Generator, n_windows: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-window d² sums with a slowly varying level (windows are not independent)."""
    level = np.repeat(rng.gamma(2.0, 1.5, size=n_windows // 10 + 1), 10)[:n_windows]
    counts = np.full(n_windows, 7.0)
    sums = np.array([rng.chisquare(3, 7).sum() for _ in range(n_windows)]) * level
    return sums, counts


def test_block_bootstrap_is_wider_than_the_iid_one_on_correlated_windows() -> None:
    rng = np.random.default_rng(2)
    sums, counts = _correlated_windows(rng, 300)
    lo_b, hi_b = block_bootstrap_ci(sums, counts, block_length=10, n_boot=2000, seed=0)
    lo_i, hi_i = block_bootstrap_ci(sums, counts, block_length=1, n_boot=2000, seed=0)
    mean = sums.sum() / counts.sum()
    assert lo_b < mean < hi_b
    assert (hi_b - lo_b) > 1.3 * (hi_i - lo_i)
    assert block_bootstrap_ci(sums, counts, block_length=10, seed=5) == block_bootstrap_ci(
        sums, counts, block_length=10, seed=5
    )
    assert all(math.isnan(x) for x in block_bootstrap_ci(np.ones(3), np.array([0.0, 0.0, 7.0]), block_length=1))


def test_block_bootstrap_covers_the_truth_on_independent_windows() -> None:
    rng = np.random.default_rng(3)
    hits = 0
    for trial in range(40):
        sums = np.array([rng.chisquare(3, 5).sum() for _ in range(60)])
        lo, hi = block_bootstrap_ci(sums, np.full(60, 5.0), block_length=3, n_boot=500, seed=trial)
        hits += lo <= 3.0 <= hi
    assert hits >= 33  # nominal 95 %: 38 of 40; short series under-cover a little


def test_default_block_length() -> None:
    assert default_block_length(1000, 8, 4) == 10
    assert default_block_length(20, 8, 2) == 4
    assert default_block_length(3) == 1


def test_unseen_block_summary_schema() -> None:
    rng = np.random.default_rng(4)
    r = rng.normal(size=(700, 3)) * 0.1
    var = np.full((700, 3), 0.01)
    out = unseen_block_summary(r, var, np.repeat(np.arange(100), 7), block_length=3, n_boot=200)
    assert set(out) == {"d2_mean", "d2_ci95", "coverage", "coverage_ci95", "spearman", "nll_per_dof", "n_frames"}
    assert out["n_frames"] == 700 and set(out["coverage"]) == {"68", "95", "99"}
    lo, hi = out["d2_ci95"]
    assert lo < out["d2_mean"] < hi and lo < 3.0 < hi
    empty = unseen_block_summary(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), block_length=1)
    assert empty["n_frames"] == 0 and math.isnan(empty["d2_mean"])


def test_coverage_intervals_cover_nominal_and_widen_with_window_correlation() -> None:
    rng = np.random.default_rng(6)
    window = np.repeat(np.arange(200), 7)
    d2_iid = rng.chisquare(3, window.size)
    _, iid = window_mean_cis(d2_iid, window, block_length=3, n_boot=500)
    for key, nominal in COVERAGE_LEVELS.items():
        lo, hi = iid[key]
        assert lo <= nominal <= hi and lo <= float(np.mean(d2_iid <= CHI2_3[key])) <= hi
    # frames of a window share a variance error (what a bad frame 0 does): same marginal
    # spread of scales, but 7 times fewer independent samples -> wider coverage intervals
    shared = np.exp(rng.normal(0.0, 0.7, 200))[window] * rng.chisquare(3, window.size)
    per_frame = np.exp(rng.normal(0.0, 0.7, window.size)) * rng.chisquare(3, window.size)
    _, cov_shared = window_mean_cis(shared, window, block_length=3, n_boot=500)
    _, cov_frame = window_mean_cis(per_frame, window, block_length=3, n_boot=500)
    for key in CHI2_3:
        assert np.diff(cov_shared[key])[0] > 1.5 * np.diff(cov_frame[key])[0], key
    empty_d2, empty_cov = window_mean_cis(np.zeros(0), np.zeros(0, int), block_length=1)
    assert all(math.isnan(x) for x in (*empty_d2, *empty_cov["68"]))


def test_summary_table_prints_missing_blocks() -> None:
    from vggt_uncertainty_ros.calibration.bootstrap import format_summary_table, unseen_summary

    rng = np.random.default_rng(5)
    seqs = {
        "a": {
            "r": rng.normal(size=(70, 6)),
            "log_var": np.zeros((70, 6)),
            "window": np.repeat(np.arange(10), 7),
            "trans_valid": np.zeros(70, bool),
        }
    }
    summary = unseen_summary(seqs, block_length=2, n_boot=50)
    assert summary["sequences"]["a"]["trans"]["n_frames"] == 0 and summary["pooled"]["rot"]["n_frames"] == 70
    text = format_summary_table(summary, "t")
    assert "POOLED" in text and "nan" in text
    none_json = {"sequences": {}, "pooled": {b: {**summary["pooled"][b], "d2_mean": None} for b in ("rot", "trans")}}
    assert "nan" in format_summary_table(none_json)


def test_quantile_fit_matches_coverage_on_a_heavy_tailed_block() -> None:
    """Student-t(3) residuals: the median fit calibrates the centre, the quantile fit the coverage."""
    rng = np.random.default_rng(6)
    r = rng.standard_t(3, size=(20000, 6)) * 0.01
    lv = np.full((20000, 6), np.log(0.01**2))
    cov = {}
    for method in ("quantile", "median"):
        lv2 = apply_recalibration(lv, fit_recalibration({"a": r}, {"a": lv}, method=method))
        d2 = np.sum(r[:, :3] ** 2 * np.exp(-lv2[:, :3]), -1)
        cov[method] = (np.mean(d2 <= 3.527), np.mean(d2 <= 7.815))
    # a t(3) shape cannot meet both levels with one factor: the fit splits the difference
    assert abs(cov["quantile"][0] - 0.683) < 0.12 and abs(cov["quantile"][1] - 0.95) < 0.05
    assert abs(cov["median"][1] - 0.95) > abs(cov["quantile"][1] - 0.95)
