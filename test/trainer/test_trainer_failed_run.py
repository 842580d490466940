"""A run that fails before its first checkpoint is marked failed; ``--resume`` says why it cannot continue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vggt_uncertainty_ros.cli.main import main as cli_main
from vggt_uncertainty_ros.errors import ConfigError, DataError
from vggt_uncertainty_ros.trainer import load_config, loop, train

REPO = Path(__file__).resolve().parents[2]


def _cfg(root: Path):
    return load_config(
        REPO / "training/configs/synthetic_tiny.yaml",
        [f"output.cache_dir={root / 'cache'}", f"output.run_dir={root / 'run'}", "output.tensorboard=false"],
    )


def _truncated_bag(*args, **kwargs):
    raise DataError("data/seq.bag: message 17: truncated record")


def test_failure_before_the_first_checkpoint_marks_the_run_failed(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(loop, "prepare_data", _truncated_bag)
    cfg = _cfg(tmp_path)
    with pytest.raises(DataError, match="truncated"):
        train(cfg)
    run = tmp_path / "run"
    failed = json.loads((run / loop.FAILED_FILE).read_text())
    assert failed["status"] == "failed" and "truncated record" in failed["error"]
    assert not (run / loop.STATE_FILE).exists() and not (run / loop.LAST_FILE).exists()

    with pytest.raises(ConfigError, match="failed before its first checkpoint.*truncated record"):
        train(cfg, resume=True)
    caplog.clear()
    assert cli_main(["train", "--out", str(run), "--resume"]) == 1
    (error,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "nothing to resume" in error.getMessage() and error.exc_info is None


def test_a_run_killed_before_its_first_checkpoint_cannot_be_resumed_either(tmp_path):
    cfg = _cfg(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("# what a killed run leaves\n")
    with pytest.raises(ConfigError, match="stopped before its first checkpoint"):
        train(cfg, resume=True)
    with pytest.raises(ConfigError, match="holds no run"):
        train(_cfg(tmp_path / "elsewhere"), resume=True)


def test_a_fresh_start_replaces_the_failed_marker(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "prepare_data", _truncated_bag)
    cfg = _cfg(tmp_path)
    with pytest.raises(DataError):
        train(cfg)
    monkeypatch.setattr(loop, "prepare_data", lambda *a, **k: (_ for _ in ()).throw(KeyError("other")))
    with pytest.raises(KeyError):
        train(cfg)
    assert "KeyError" in json.loads((tmp_path / "run" / loop.FAILED_FILE).read_text())["error"]
