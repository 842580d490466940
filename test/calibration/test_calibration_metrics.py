"""Calibration metrics against independent computations (scipy.stats) and sampling theory."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import mahalanobis

from vggt_uncertainty_ros.calibration import (
    CHI2_3,
    COVERAGE_LEVELS,
    D2_ROT_MEAN,
    D2_TRANS_MEAN,
    METRIC_NAMES,
    SCALE_FIT_N_VALID_MEAN,
    ScaleFitDiagnostics,
    anees_bounds,
    block_metrics,
    calibration_metrics,
    mahalanobis_d2,
    metric_name,
)
from vggt_uncertainty_ros.errors import CalibrationError

N = 100_000


@pytest.fixture(scope="module")
def gaussian() -> tuple[np.ndarray, np.ndarray]:
    """Residuals drawn from the Gaussian the log-variances describe (heteroscedastic)."""
    rng = np.random.default_rng(12345)
    log_var = np.concatenate([rng.uniform(-9, -5, size=(N, 3)), rng.uniform(-8, -3, size=(N, 3))], axis=1)
    r = rng.normal(size=(N, 6)) * np.exp(0.5 * log_var)
    return r, log_var


def test_chi2_quantiles_match_scipy():
    for key, q in CHI2_3.items():
        assert q == pytest.approx(stats.chi2.ppf(COVERAGE_LEVELS[key], 3), abs=5e-4)


@pytest.mark.parametrize("n", [1, 7, 100, 5000])
def test_anees_bounds_match_gamma_quantiles(n):
    lo, hi = anees_bounds(n)
    # χ²(k) is Gamma(k/2, scale 2): an independent route to the same quantiles
    assert lo == pytest.approx(stats.gamma.ppf(0.025, 1.5 * n, scale=2) / n, rel=1e-10)
    assert hi == pytest.approx(stats.gamma.ppf(0.975, 1.5 * n, scale=2) / n, rel=1e-10)
    assert lo < 3 < hi
    lo1, hi1 = anees_bounds(n, dof=1, level=0.9)
    assert stats.chi2.cdf(lo1 * n, n) == pytest.approx(0.05) and stats.chi2.cdf(hi1 * n, n) == pytest.approx(0.95)


def test_anees_bounds_rejects_bad_arguments():
    with pytest.raises(CalibrationError, match="n >= 1"):
        anees_bounds(0)
    with pytest.raises(CalibrationError, match="level"):
        anees_bounds(10, level=1.0)


def test_known_gaussian_is_calibrated(gaussian):
    r, log_var = gaussian
    m = calibration_metrics(r, log_var)
    for block in ("rot", "trans"):
        # mean of χ²₃ is 3 with variance 6; standard error sqrt(6/N)
        assert abs(m[metric_name(block, "d2_mean")] - 3.0) < 4 * math.sqrt(6 / N)
        assert m[metric_name(block, "d2_mean")] > anees_bounds(N)[0] - 4 * math.sqrt(6 / N)
        for key, p in COVERAGE_LEVELS.items():
            se = math.sqrt(p * (1 - p) / N)  # binomial standard error of a coverage fraction
            assert abs(m[metric_name(block, f"coverage_{key}")] - p) < 4 * se + 2e-4  # + rounding of CHI2_3
        # median: the fraction below the true χ²₃ median is Binomial(N, 1/2)/N
        frac = stats.chi2.cdf(m[metric_name(block, "d2_median")], 3)
        assert abs(frac - 0.5) < 4 * math.sqrt(0.25 / N)


def test_d2_and_nll_against_scipy(gaussian):
    r, log_var = gaussian
    sigma = np.exp(0.5 * log_var)
    m = calibration_metrics(r, log_var)
    for i, block in enumerate(("rot", "trans")):
        sl = slice(3 * i, 3 * i + 3)
        d2 = mahalanobis_d2(r[:50, sl], sigma[:50, sl] ** 2)
        pairs = zip(r[:50, sl], sigma[:50, sl], strict=True)
        expected = [mahalanobis(x, np.zeros(3), np.diag(1 / s**2)) ** 2 for x, s in pairs]
        np.testing.assert_allclose(d2, expected, rtol=1e-12)
        nll = -np.mean(stats.norm.logpdf(r[:, sl], loc=0.0, scale=sigma[:, sl]))
        assert m[metric_name(block, "nll_per_dof")] == pytest.approx(nll, rel=1e-12)


def test_spearman_against_scipy(gaussian):
    r, log_var = gaussian
    r, log_var = r[:2000], log_var[:2000]
    m = calibration_metrics(r, log_var)
    for i, block in enumerate(("rot", "trans")):
        sl = slice(3 * i, 3 * i + 3)
        sigma_blk = np.sqrt(np.mean(np.exp(log_var[:, sl]), axis=1))
        expected = stats.spearmanr(sigma_blk, np.linalg.norm(r[:, sl], axis=1)).statistic
        assert m[metric_name(block, "spearman")] == pytest.approx(expected, abs=1e-12)
        assert m[metric_name(block, "spearman")] > 0.3  # σ carries information about |r| here
    # ties are ranked as scipy does (average ranks)
    rt = np.repeat([[0.1, 0, 0], [0.2, 0, 0], [0.2, 0, 0], [0.5, 0, 0]], 2, axis=0)
    var = np.repeat([[1.0] * 3, [2.0] * 3, [2.0] * 3, [1.0] * 3], 2, axis=0)[::-1]
    expected = stats.spearmanr(np.sqrt(var[:, 0]), np.abs(rt[:, 0])).statistic
    assert block_metrics(rt, var).spearman == pytest.approx(expected, abs=1e-12)
    assert math.isnan(block_metrics(rt, np.ones_like(rt)).spearman)  # constant σ


@pytest.mark.parametrize("k", [0.5, 2.0])
def test_over_and_under_confidence_move_d2_the_right_way(gaussian, k):
    r, log_var = gaussian
    base = calibration_metrics(r, log_var)
    scaled = calibration_metrics(r, log_var + 2 * math.log(k))  # σ multiplied by k
    for name in (D2_ROT_MEAN, D2_TRANS_MEAN):
        assert scaled[name] == pytest.approx(base[name] / k**2, rel=1e-12)
        assert (scaled[name] > 3) == (k < 1)  # smaller σ: overconfident, d² > 3
    cov = metric_name("rot", "coverage_95")
    assert (scaled[cov] < base[cov]) == (k < 1)


def test_sigma_sqrt_info_and_residual_statistics():
    # 11 samples, residual norms 0..10 along x, constant σ per block
    r = np.zeros((11, 6))
    r[:, 0] = np.arange(11.0)
    r[:, 4] = np.arange(11.0) * 0.1
    log_var = np.tile(np.log([0.04, 0.04, 0.04, 0.0025, 0.0025, 0.0025]), (11, 1))
    m = calibration_metrics(r, log_var)
    assert m["diagnostic/residual_rot_p90"] == pytest.approx(9.0)
    assert m["diagnostic/residual_trans_p90"] == pytest.approx(0.9)
    for p in ("50", "90", "99"):
        assert m[f"uncertainty/sigma_rot_p{p}"] == pytest.approx(0.2)
        assert m[f"uncertainty/sigma_trans_p{p}"] == pytest.approx(0.05)
        assert m[f"sqrt_info_rot_p{p}"] == pytest.approx(5.0)
        assert m[f"sqrt_info_trans_p{p}"] == pytest.approx(20.0)
    assert m["uncertainty/sigma_rot_mean"] == pytest.approx(0.2)
    # percentiles of σ and of √λ = 1/σ mirror each other (odd count: medians are samples)
    lv = np.random.default_rng(0).uniform(-5, 0, size=(101, 3))
    b = block_metrics(np.zeros((101, 3)), np.exp(lv))
    assert b.sqrt_info_p50 == pytest.approx(1 / b.sigma_p50)
    assert b.sigma_p50 <= b.sigma_p90 <= b.sigma_p99


def test_log_var_clamp_hits():
    n = 20
    r = np.full((n, 6), 0.01)
    log_var = np.full((n, 6), -4.0)
    log_var[:5, 0] = -20.0  # 5 of 60 rotation components at the minimum
    log_var[:3, 4] = 20.0  # 3 of 60 translation components at the maximum
    log_var[3, 5] = 19.9  # near, but not at, the bound
    m = calibration_metrics(r, log_var, parameterization="log_var")
    assert m["diagnostic/log_var_rot_at_min"] == pytest.approx(5 / 60)
    assert m["diagnostic/log_var_rot_at_max"] == 0.0
    assert m["diagnostic/log_var_trans_at_max"] == pytest.approx(3 / 60)
    assert m["diagnostic/log_var_trans_at_min"] == 0.0
    assert "sqrt_info_rot_clamp_hit" not in m
    # bounds apply to the head's raw output, not to a scale-converted log-variance
    shifted = calibration_metrics(r, log_var + 2 * math.log(3.0), log_var_head=log_var)
    assert shifted["diagnostic/log_var_rot_at_min"] == pytest.approx(5 / 60)


def test_sqrt_info_clamp_hits():
    n = 10
    sqrt_info = np.full((n, 6), 10.0)
    sqrt_info[:4, 0] = 200.0  # 4 of 30 rotation values at the 200 clamp
    sqrt_info[:, 3:] = 100.0  # every translation value at the 100 clamp
    sqrt_info[0, 3] = 99.0
    head = (-2 * np.log(sqrt_info)).astype(np.float32).astype(np.float64)  # via float32, as a head gives it
    m = calibration_metrics(np.zeros((n, 6)), head, parameterization="sqrt_info")
    assert m["sqrt_info_rot_clamp_hit"] == pytest.approx(4 / 30)
    assert m["sqrt_info_trans_clamp_hit"] == pytest.approx(29 / 30)
    assert "diagnostic/log_var_rot_at_min" not in m
    assert m["sqrt_info_trans_p50"] == pytest.approx(100.0, rel=1e-6)
    b = block_metrics(np.zeros((n, 3)), np.exp(head[:, :3]), sqrt_info_bound=200.0)
    assert b.clamp_hit_high == pytest.approx(4 / 30) and b.clamp_hit_low == 0.0


def test_scale_fit_metrics():
    rng = np.random.default_rng(5)
    t_gt = rng.normal(size=(4, 7, 3))
    t_pred = t_gt * 1.1
    scale = np.array([1.0, 2.0, 3.0, 4.0])
    n_valid = np.array([7, 6, 2, 0])
    r, lv = np.zeros((28, 6)), np.zeros((28, 6))
    m = calibration_metrics(
        r, lv, scale_fit={"scale": scale, "t_gt": t_gt, "t_pred_scaled": t_pred, "n_valid": n_valid}
    )
    assert m["pred_trans_norm_scaled_mean"] == pytest.approx(np.mean(np.linalg.norm(t_pred, axis=-1)))
    assert m["gt_trans_norm_mean"] == pytest.approx(np.mean(np.linalg.norm(t_gt, axis=-1)))
    assert m["scale_fit/scale_mean"] == pytest.approx(2.5)
    assert m[SCALE_FIT_N_VALID_MEAN] == pytest.approx(3.75)
    diag = ScaleFitDiagnostics.from_translations(scale, t_gt.reshape(-1, 3), t_pred.reshape(-1, 3))
    m2 = calibration_metrics(r, lv, scale_fit=diag)
    assert m2["gt_trans_norm_mean"] == pytest.approx(m["gt_trans_norm_mean"])
    assert SCALE_FIT_N_VALID_MEAN not in m2
    with pytest.raises(CalibrationError, match="t_pred_scaled"):
        calibration_metrics(r, lv, scale_fit={"scale": scale, "t_gt": t_gt})


def test_names_are_the_analysis_names(gaussian):
    r, log_var = gaussian
    m = calibration_metrics(r[:100], log_var[:100])
    ms = calibration_metrics(r[:100], log_var[:100], parameterization="sqrt_info")
    required = {
        "calibration/d2_rot_mean", "calibration/d2_trans_mean", "uncertainty/sigma_rot_mean",
        "uncertainty/sigma_trans_mean", "diagnostic/residual_rot_p90", "diagnostic/residual_trans_p90",
        "diagnostic/log_var_rot_at_min", "diagnostic/log_var_rot_at_max", "diagnostic/log_var_trans_at_min",
        "diagnostic/log_var_trans_at_max", "sqrt_info_rot_p90", "sqrt_info_trans_p90",
    }  # fmt: skip
    assert required <= set(m)
    assert {"sqrt_info_rot_clamp_hit", "sqrt_info_trans_clamp_hit"} <= set(ms)
    assert set(m) | set(ms) <= set(METRIC_NAMES)
    assert all(isinstance(v, float) for v in m.values())


def test_input_validation():
    with pytest.raises(CalibrationError, match=r"\[N, 6\]"):
        calibration_metrics(np.zeros((3, 5)), np.zeros((3, 5)))
    with pytest.raises(CalibrationError, match="parameterization"):
        calibration_metrics(np.zeros((3, 6)), np.zeros((3, 6)), parameterization="sigma")
    with pytest.raises(CalibrationError, match="non-finite"):
        calibration_metrics(np.zeros((1, 6)), np.full((1, 6), np.nan))
    with pytest.raises(CalibrationError, match="positive and finite"):
        mahalanobis_d2(np.zeros(3), np.array([1.0, 0.0, 1.0]))
    with pytest.raises(CalibrationError, match="unknown metric"):
        metric_name("rot", "d3_mean")


def test_trans_valid_excludes_rows_from_the_translation_block_only() -> None:
    rng = np.random.default_rng(9)
    r = rng.normal(size=(200, 6))
    lv = np.zeros((200, 6))
    valid = np.arange(200) < 150
    r[150:, 3:] = 50.0  # unscaled windows: translation residuals meaningless
    m = calibration_metrics(r, lv, trans_valid=valid)
    full = calibration_metrics(r[:150], lv[:150])
    assert m[D2_TRANS_MEAN] == pytest.approx(full[D2_TRANS_MEAN])
    assert m[D2_ROT_MEAN] == pytest.approx(calibration_metrics(r, lv)[D2_ROT_MEAN])
    assert m["scale/trans_excluded_frames"] == 50.0
    none = calibration_metrics(r, lv, trans_valid=np.zeros(200, bool))
    assert math.isnan(none[D2_TRANS_MEAN]) and set(none) == set(m)
    with pytest.raises(CalibrationError):
        calibration_metrics(r, lv, trans_valid=np.ones(3, bool))
