"""A full trainer run on synthetic sequences with the tiny backbone.

Cache (the second run hits it), train, validate, checkpoint, resume (pause/SIGINT + resume
gives the same weights and metrics as one uninterrupted run), charts (PNG files opened).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from vggt_uncertainty_ros.calibration.metrics import D2_ROT_MEAN, D2_TRANS_MEAN, LOG_VAR_TRANS_AT_MAX
from vggt_uncertainty_ros.cli.main import main as cli_main
from vggt_uncertainty_ros.errors import ConfigError
from vggt_uncertainty_ros.head import load_head
from vggt_uncertainty_ros.trainer import TrainConfig, load_config, train
from vggt_uncertainty_ros.trainer.logs import read_metrics

REPO = Path(__file__).resolve().parents[2]
ITERATIONS = 12


def _cfg(cache_dir: Path, run_dir: Path, *extra: str) -> TrainConfig:
    return load_config(
        REPO / "training/configs/synthetic_tiny.yaml",
        [
            f"output.cache_dir={cache_dir}",
            f"output.run_dir={run_dir}",
            f"train.iterations={ITERATIONS}",
            "train.val_every=4",
            "train.log_every=2",
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("trainer")
    cache = root / "cache"
    result = train(_cfg(cache, root / "run_a"))
    return root, result


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "checkpoints" / "last.safetensors"))


def _assert_same_run(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    fa = json.loads((a / "final_metrics.json").read_text())
    fb = json.loads((b / "final_metrics.json").read_text())
    assert fa["val"] == fb["val"]
    assert fa["best_step"] == fb["best_step"]
    val_a = [r["metrics"] for r in read_metrics(a) if r["split"] == "val"]
    val_b = [r["metrics"] for r in read_metrics(b) if r["split"] == "val"]
    assert val_a == val_b


def test_full_run_trains_validates_and_checkpoints(first_run) -> None:
    root, result = first_run
    run = root / "run_a"
    assert result.status == "completed" and result.step == ITERATIONS
    assert result.cache_misses == 3 and result.cache_hits == 0
    assert result.n_train_windows > 0 and result.n_val_windows > 0
    # checkpoints carry the metadata consumers need
    head, meta = load_head(run / "checkpoints" / "best.safetensors")
    assert meta.input_feature == "camera_features"
    assert meta.scale_convention == "vggt"
    assert meta.backbone and meta.parameterization == "log_var"
    assert meta.config["train"]["iterations"] == ITERATIONS
    assert D2_ROT_MEAN in meta.metrics and "calibration/score" in meta.metrics
    assert head(torch.zeros(2, meta.in_dim)).shape == (2, 6)
    # every validation logs the calibration core under the analysis' names + loss, lr, wall time
    records = read_metrics(run)
    val = [r for r in records if r["split"] == "val"]
    train_recs = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in val] == [4, 8, 12]
    for name in (
        D2_ROT_MEAN,
        D2_TRANS_MEAN,
        LOG_VAR_TRANS_AT_MAX,
        "loss/pose_uncertainty_nll",
        "pred_trans_norm_scaled_mean",
        "gt_trans_norm_mean",
    ):
        assert name in val[-1]["metrics"], name
    assert {"train/lr", "time/wall_s", "loss/pose_uncertainty_nll"} <= set(train_recs[-1]["metrics"])
    assert any(p.name.startswith("events.out.tfevents") for p in (run / "tensorboard").iterdir())
    # training lowers the NLL on the training batches
    nll = [r["metrics"]["loss/pose_uncertainty_nll"] for r in train_recs]
    assert nll[-1] < nll[0]
    speed = json.loads((run / "speed.json").read_text())
    assert speed["head_step_s"] > 0 and speed["backbone_window_s"] > 0
    assert speed["ratio"] == pytest.approx(speed["backbone_window_s"] / speed["head_step_s"])


def test_second_run_hits_cache_and_is_deterministic(first_run) -> None:
    root, _ = first_run
    result = train(_cfg(root / "cache", root / "run_b"))
    assert result.cache_hits == 3 and result.cache_misses == 0
    _assert_same_run(root / "run_a", root / "run_b")


def test_other_input_feature_reuses_the_cache(first_run) -> None:
    root, _ = first_run
    result = train(
        _cfg(
            root / "cache",
            root / "run_trunk",
            "head.input_feature=camera_trunk_features",
            "train.iterations=2",
            "train.val_every=2",
        )
    )
    assert result.cache_misses == 0
    _, meta = load_head(root / "run_trunk" / "checkpoints" / "last.safetensors")
    assert meta.input_feature == "camera_trunk_features"


def test_pause_and_resume_equals_uninterrupted(first_run) -> None:
    root, _ = first_run
    cfg = _cfg(root / "cache", root / "run_pause", f"train.stop_after={ITERATIONS // 2}")
    paused = train(cfg)
    assert paused.status == "paused" and paused.step == ITERATIONS // 2
    with pytest.raises(ConfigError, match="already holds a run"):
        train(cfg)
    resumed = train(cfg, resume=True)
    assert resumed.status == "completed" and resumed.step == ITERATIONS
    _assert_same_run(root / "run_a", root / "run_pause")


def test_sigint_saves_state_and_resume_via_cli_equals_uninterrupted(first_run) -> None:
    root, _ = first_run
    run = root / "run_sigint"

    def interrupt(step: int) -> None:
        if step == 5:  # not a validation step: the state must be saved by the SIGINT path
            os.kill(os.getpid(), signal.SIGINT)

    result = train(_cfg(root / "cache", run), on_step=interrupt)
    assert result.status == "interrupted" and result.step == 5
    assert (run / "state" / "latest.safetensors").is_file()
    assert cli_main(["train", "--resume", "--out", str(run)]) == 0
    _assert_same_run(root / "run_a", run)


def test_charts_render_from_local_logs(first_run) -> None:
    root, _ = first_run
    out = root / "charts"
    assert cli_main(["charts", "--run", str(root / "run_a"), "--out", str(out)]) == 0
    expected = {
        "loss_curves",
        "calibration",
        "clamp_hit_rate",
        "sigma_percentiles",
        "residual_distribution",
        "scale_fitting",
        "sigma_mean",
    }
    assert {p.stem for p in out.glob("*.png")} == expected
    for name in expected:
        with Image.open(out / f"{name}.png") as img:
            img.verify()
        with Image.open(out / f"{name}.png") as img:
            pixels = np.asarray(img.convert("L"), dtype=np.float64)
        assert pixels.shape[0] > 200 and pixels.shape[1] > 300
        # something is drawn: many distinct grey levels and a non-white fraction
        assert len(np.unique(pixels)) > 20, name
        assert np.mean(pixels < 250) > 0.02, name
    summary = (out / "summary.md").read_text()
    assert f"`{D2_TRANS_MEAN}`" in summary and "validation (step 12)" in summary


def test_lr_drop_and_early_stop_follow_validation_calibration(first_run) -> None:
    root, _ = first_run
    run = root / "run_early"
    # tolerances so wide that the first validation counts as "d² near 3"
    result = train(
        _cfg(
            root / "cache",
            run,
            "optim.lr_drop=true",
            "optim.lr_drop_tol=1e9",
            "train.early_stop=true",
            "train.early_stop_tol=1e9",
            "train.early_stop_patience=2",
        )
    )
    assert result.status == "early_stopped" and result.step == 8
    lrs = [r["metrics"]["train/lr"] for r in read_metrics(run) if r["split"] == "train"]
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-4)
