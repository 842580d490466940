"""VGGT-Ω (tiny) end to end: trainer -> head checkpoint -> evaluator --run-model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vggt_uncertainty_ros.cli.main import main as cli_main
from vggt_uncertainty_ros.head import read_head_metadata
from vggt_uncertainty_ros.trainer import load_config, train

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow  # a few backbone windows of each tool on 2 CPU cores


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("omega_e2e")
    cfg = load_config(
        REPO / "training/configs/synthetic_tiny.yaml",
        [
            f"output.cache_dir={root / 'cache'}",
            f"output.run_dir={root / 'run'}",
            "output.tensorboard=false",
            "backbone.name=vggt-omega",
            "train.iterations=4",
            "train.val_every=2",
            "train.log_every=2",
        ],
    )
    return root, train(cfg)


def test_trainer_writes_a_vggt_omega_head(trained):
    root, result = trained
    assert result.status == "completed" and result.step == 4 and result.n_train_windows > 0
    meta = read_head_metadata(root / "run" / "checkpoints" / "last.safetensors")
    assert meta.backbone_family == "vggt-omega" and meta.in_dim == 128 and meta.backbone


def test_evaluator_runs_the_head_on_vggt_omega_and_refuses_it_on_vggt(trained, tmp_path, caplog):
    from vggt_uncertainty_ros.data.synth import generate

    root, _ = trained
    head = root / "run" / "checkpoints" / "last.safetensors"
    seq = generate(tmp_path / "synth", seed=3, n_frames=12, formats=("tum",), width=96, height=72)
    out = tmp_path / "out"
    args = ["eval", "--data", str(seq.paths["tum"]), "--run-model", "--backbone", "vggt-omega", "--weights", "tiny",
            "--head", str(head), "--out", str(out), "--max-frames", "12", "--no-plots"]  # fmt: skip
    assert cli_main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["source"] == "run-model" and report["n_frames"] > 0
    assert report["calibration"]["rot"]["d2_mean"] > 0
    other = ["eval", "--data", str(seq.paths["tum"]), "--run-model", "--backbone", "vggt", "--weights", "tiny",
             "--head", str(head), "--out", str(tmp_path / "o2"), "--max-frames", "12", "--no-plots"]  # fmt: skip
    assert cli_main(other) == 1  # a clear error, no traceback
    assert "CheckpointError" in caplog.text and "trained on backbone 'vggt-omega'" in caplog.text


def test_trainer_refuses_to_resume_the_head_on_another_backbone(trained):
    from vggt_uncertainty_ros.errors import CheckpointError

    root, _ = trained
    cfg = load_config(
        REPO / "training/configs/synthetic_tiny.yaml",
        [f"output.cache_dir={root / 'cache'}", f"output.run_dir={root / 'run'}", "output.tensorboard=false",
         "backbone.name=vggt", "train.iterations=6"],
    )  # fmt: skip
    with pytest.raises(CheckpointError, match="trained on backbone 'vggt-omega'.*uses backbone 'vggt'"):
        train(cfg, resume=True)
