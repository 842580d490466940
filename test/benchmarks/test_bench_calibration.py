"""Synthetic heteroscedastic benchmark: the log_var head meets its targets; JSON layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from benchmarks.calibration import (
    BenchConfig,
    log_var_targets_met,
    make_windows,
    run_bench,
    true_log_var,
)
from vggt_uncertainty_ros.cli.main import main

METRIC_KEYS = {"d2_mean", "anees_bounds_95", "coverage", "spearman", "clamp_hit", "excess_nll_per_dof"}


def test_data_spans_the_documented_noise_levels() -> None:
    cfg = BenchConfig.small()
    train = make_windows(cfg, 4000, np.random.default_rng(0))
    sigma = torch.exp(0.5 * train.log_var_true[:, 1:]).reshape(-1, 6).numpy()
    assert 0.0015 < sigma[:, :3].min() < 0.003 and 0.03 < sigma[:, :3].max() < 0.07
    assert 0.004 < sigma[:, 3:].min() < 0.006 and 0.07 < sigma[:, 3:].max() < 0.16
    static = train.latents[:, :, 0].numpy().max(axis=1) < 0.1  # near-static windows
    assert 0.15 < static.mean() < 0.35
    assert sigma.reshape(-1, 7, 6)[static][..., 3:].max() < 0.01  # translation σ < 1 cm
    assert float(train.residual[:, 0].abs().max()) == 0.0  # frame 0 is the reference
    z = np.zeros((1, 8))
    assert np.isfinite(true_log_var(z, cfg)).all()


def test_log_var_head_meets_the_calibration_targets() -> None:
    torch.set_num_threads(2)
    cfg = BenchConfig.small(seed=0)
    result = run_bench(cfg, ("log_var",))
    for block in ("rot", "trans"):
        m = result.metrics["log_var"][block]
        assert m["n"] == cfg.n_test_windows * (cfg.window_size - 1) >= 5000  # bounds within ±2.5 %
        met = log_var_targets_met(m)
        assert all(met.values()), (block, met, m)
        assert m["spearman"] > 0.6


def test_cli_writes_json_with_every_key(tmp_path: Path) -> None:
    assert main(["bench-calibration", "--small", "--steps", "15", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "bench_calibration.json").read_text())
    for parameterization in ("log_var", "sqrt_info"):
        for block in ("rot", "trans"):
            m = data[parameterization][block]
            assert set(m) >= METRIC_KEYS
            assert set(m["coverage"]) == {"68", "95", "99"}
            lo, hi = m["anees_bounds_95"]
            assert lo < 3.0 < hi
    assert data["config"]["steps"] == 15
