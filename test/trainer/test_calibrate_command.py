"""``vggt-uncertainty calibrate``: factors fitted on held-out sequences, stored, applied."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from vggt_uncertainty_ros.cli.main import main as cli_main
from vggt_uncertainty_ros.data.synth import generate
from vggt_uncertainty_ros.head import read_head_metadata
from vggt_uncertainty_ros.head.output import head_output_log_var
from vggt_uncertainty_ros.trainer import load_config, train

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # trains a tiny head (~20 s on 2 cores)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("calibrate")
    held = []
    for seed in (101, 102, 103):
        res = generate(root / f"held{seed}", seed=seed, n_frames=12, formats=("tum",), width=160, height=120)
        held.append(Path(res.paths["tum"]))
    cfg = load_config(
        REPO / "training/configs/synthetic_tiny.yaml",
        [
            f"output.run_dir={root / 'run'}",
            f"output.cache_dir={root / 'cache'}",
            "output.tensorboard=false",
            "train.iterations=10",
            "loss.min_motion_m=0.002",
            f"data.test=[{held[2]}]",
        ],
    )
    train(cfg)
    return root / "run", held[:2]


def test_training_recalibrates_on_validation_and_reports_held_out_test(tiny_run) -> None:
    run, _ = tiny_run
    rec = read_head_metadata(run / "checkpoints" / "best_recalibrated.safetensors").recalibration
    assert rec["sequences"] and rec["factors"]["rot"] > 0
    test = json.loads((run / "test_metrics.json").read_text())
    assert set(test) == {"sequences", "pooled", "recalibration"} and len(test["sequences"]) == 1
    assert test["pooled"]["rot"]["n_frames"] > 0 and len(test["pooled"]["rot"]["d2_ci95"]) == 2
    assert test["recalibration"]["factors"] == rec["factors"]
    final = json.loads((run / "final_metrics.json").read_text())
    assert final["recalibration"] == rec["factors"]


def test_calibrate_fits_stores_and_prints_before_after(tiny_run, tmp_path: Path, capsys) -> None:
    run, held = tiny_run
    out = tmp_path / "recal.safetensors"
    assert (
        cli_main(["calibrate", "--run", str(run), "--data", *map(str, held), "--out", str(out), "--n-boot", "50"]) == 0
    )
    text = capsys.readouterr().out
    assert "before recalibration" in text and "after recalibration" in text and "POOLED" in text
    meta = read_head_metadata(out)
    rec = meta.recalibration
    assert rec["method"] == "quantile" and len(rec["sequences"]) == 2
    assert rec["factors"]["rot"] > 0 and math.isfinite(rec["factors"]["rot"])
    assert set(rec["before"]) == {"rot", "trans"} and set(rec["after"]) == {"rot", "trans"}
    assert rec["after"]["rot"]["n_frames"] == rec["before"]["rot"]["n_frames"] > 0
    # what no factor can fix is stated beside the factors: the coverage floor, printed and stored
    assert "coverage floor" in text and 0.0 <= rec["coverage_floor"]["rot"] < 1.0
    # the original checkpoint is untouched, and consumers apply the stored factors
    assert not read_head_metadata(run / "checkpoints" / "best.safetensors").recalibration
    lv = np.zeros((4, 6))
    T = np.tile(np.eye(4), (4, 1, 1))
    applied = head_output_log_var(lv, T, meta)
    np.testing.assert_allclose(np.exp(applied[0, :3]), rec["factors"]["rot"])
    np.testing.assert_allclose(head_output_log_var(lv, T, meta, recalibrate=False), lv)


def test_calibrate_refuses_training_sequences_and_missing_runs(tiny_run, tmp_path: Path) -> None:
    run, held = tiny_run
    assert cli_main(["calibrate", "--run", str(tmp_path), "--data", str(held[0]), "--out", str(tmp_path / "o")]) == 1
    trained = next((run.parent / "cache" / "synthetic").glob("seed00000_*")) / "tum"
    assert trained.is_dir()
    assert cli_main(["calibrate", "--run", str(run), "--data", str(trained), "--out", str(tmp_path / "o")]) == 1
    assert not (tmp_path / "o").exists()


def test_calibrate_offers_every_fitting_method() -> None:
    from vggt_uncertainty_ros.calibration.recalibration import METHODS
    from vggt_uncertainty_ros.cli.main import build_parser

    args = build_parser("calibrate").parse_args(["calibrate", "--run", "r", "--data", "d", "--out", "o"])
    assert args.method == METHODS[0]
    for method in METHODS:
        assert (
            build_parser("calibrate")
            .parse_args(["calibrate", "--run", "r", "--data", "d", "--out", "o", "--method", method])
            .method
            == method
        )
