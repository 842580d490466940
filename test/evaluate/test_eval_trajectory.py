"""``calibration.trajectory.ate_rpe``: evo's Sim(3)-aligned ATE and consecutive-frame RPE."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from vggt_uncertainty_ros.calibration.trajectory import ate_rpe
from vggt_uncertainty_ros.data.tum import read_tum_trajectory, write_tum_trajectory
from vggt_uncertainty_ros.errors import CalibrationError
from vggt_uncertainty_ros.geometry import se3_exp

STAMPS = 1_305_031_102_175_304_000 + np.arange(30, dtype=np.int64) * 33_333_333


def _walk(rng: np.random.Generator, n: int) -> np.ndarray:
    T = [np.eye(4)]
    for _ in range(n - 1):
        T.append(T[-1] @ se3_exp(np.concatenate([rng.normal(0, 0.05, 3), rng.normal(0, 0.1, 3)])))
    return np.asarray(T)


def _sim3(T: np.ndarray, s: float, A: np.ndarray) -> np.ndarray:
    out = A[None] @ T
    out[:, :3, 3] = s * (A[:3, :3] @ T[:, :3, 3].T).T + A[:3, 3]
    return out


def test_similarity_transformed_estimate_has_zero_error() -> None:
    rng = np.random.default_rng(0)
    gt = _walk(rng, len(STAMPS))
    A = se3_exp(np.array([0.3, -0.2, 1.0, 2.0, -1.0, 0.5]))
    est = _sim3(gt, 0.25, A)
    out = ate_rpe(STAMPS, est, gt)
    assert out["ate_rmse_m"] < 1e-9 and out["rpe_trans_rmse_m"] < 1e-9 and out["rpe_rot_rmse_deg"] < 1e-6
    assert out["sim3_scale"] == pytest.approx(4.0, rel=1e-9)
    assert out["n_poses"] == len(STAMPS)


def test_equals_evo_cli_on_the_same_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    gt = _walk(rng, len(STAMPS))
    est = _sim3(gt, 3.0, np.eye(4)) @ se3_exp(rng.normal(0, 0.02, (len(STAMPS), 6)))
    write_tum_trajectory(tmp_path / "gt.tum", STAMPS, gt)
    write_tum_trajectory(tmp_path / "est.tum", STAMPS, est)
    stamps, gt_r = read_tum_trajectory(tmp_path / "gt.tum")
    _, est_r = read_tum_trajectory(tmp_path / "est.tum")
    out = ate_rpe(stamps, est_r, gt_r)
    for key, extra in (("ate_rmse_m", ()), ("rpe_trans_rmse_m", ()), ("rpe_rot_rmse_deg", ("-r", "angle_deg"))):
        tool = "evo_ape" if key.startswith("ate") else "evo_rpe"
        res = tmp_path / f"{key}.zip"
        cmd = [
            str(Path(sys.executable).parent / tool),
            "tum",
            str(tmp_path / "gt.tum"),
            str(tmp_path / "est.tum"),
            "-as",
            *extra,
            "--save_results",
            str(res),
            "--no_warnings",
        ]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        with zipfile.ZipFile(res) as z:
            assert json.loads(z.read("stats.json"))["rmse"] == pytest.approx(out[key], abs=1e-6)


def test_rejects_bad_input() -> None:
    gt = np.tile(np.eye(4), (3, 1, 1))
    with pytest.raises(CalibrationError, match="at least 3 poses"):
        ate_rpe(STAMPS[:2], gt[:2], gt[:2])
    with pytest.raises(CalibrationError, match="increase strictly"):
        ate_rpe(STAMPS[[0, 0, 1]], gt, gt)
    with pytest.raises(CalibrationError, match="shape"):
        ate_rpe(STAMPS[:3], gt[:2], gt)
    bad = gt.copy()
    bad[1, 0, 3] = np.nan
    with pytest.raises(CalibrationError, match="non-finite"):
        ate_rpe(STAMPS[:3], bad, gt)
