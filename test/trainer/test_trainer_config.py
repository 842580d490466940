"""Config merging: defaults < YAML < --set overrides; unknown keys and wrong types rejected."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vggt_uncertainty_ros.errors import ConfigError
from vggt_uncertainty_ros.trainer.config import TrainConfig, load_config, parse_overrides, save_run_config

REPO = Path(__file__).resolve().parents[2]


def _yaml(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_merge_order_yaml_then_overrides(tmp_path: Path) -> None:
    path = _yaml(tmp_path, {"optim": {"lr": 3e-4}, "train": {"iterations": 7}, "data": {"synthetic": {"train": 1}}})
    cfg = load_config(path, ["train.iterations=9", "head.parameterization=sqrt_info", "data.train=[a, {path: b}]"])
    assert cfg.optim.lr == pytest.approx(3e-4)
    assert cfg.train.iterations == 9
    assert cfg.head.parameterization == "sqrt_info"
    assert [s.path for s in cfg.data.train] == ["a", "b"]
    assert cfg.window.size == TrainConfig().window.size  # untouched default


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("bogus.key=1", r"unknown key\(s\) \['bogus'\]"),
        ("optim.learning_rate=1", r"unknown key\(s\) \['learning_rate'\] in section 'optim'"),
        ("optim.lr=fast", r"optim.lr: expected a number"),
        ("train.iterations=2.5", r"train.iterations: expected an integer"),
        ("loss.motion_weighting=1", r"loss.motion_weighting: expected true/false"),
        ("head.input_feature=patch_tokens", r"head.input_feature: 'patch_tokens' is not one of"),
        ("train.batch_size=0", r"train.batch_size: must be > 0"),
        ("novalue", r"not of the form section.key=value"),
    ],
)
def test_rejects_bad_overrides(override: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(None, ["data.synthetic.train=1", override])


def test_rejects_unknown_key_in_file_and_names_file(tmp_path: Path) -> None:
    path = _yaml(tmp_path, {"head": {"paramterization": "log_var"}})
    with pytest.raises(ConfigError, match=r"paramterization.*cfg\.yaml"):
        load_config(path)


def test_needs_training_data() -> None:
    with pytest.raises(ConfigError, match="no training sequences"):
        load_config(None, [])


def test_saved_config_round_trips_with_git_sha(tmp_path: Path) -> None:
    cfg = load_config(REPO / "training/configs/synthetic_tiny.yaml", ["optim.lr=2e-3"])
    path = save_run_config(cfg, tmp_path / "run")
    doc = yaml.safe_load(path.read_text())
    assert doc["_run"]["git_sha"]
    assert load_config(path) == cfg


@pytest.mark.parametrize(
    "name",
    [
        "config/train.yaml",
        "training/configs/synthetic_tiny.yaml",
        "training/configs/tum_fr1_desk_log_var.yaml",
        "training/configs/tum_fr1_desk_sqrt_info.yaml",
        "training/configs/tum_heldout.yaml",
    ],
)
def test_shipped_configs_load(name: str) -> None:
    cfg = load_config(REPO / name)
    assert cfg.window.size >= 2


def test_parse_overrides_values() -> None:
    parsed = parse_overrides(["a.c=true", "a.d=[1, 2]", "a.e=text", "a.f=3"])
    assert parsed == {"a.c": True, "a.d": [1, 2], "a.e": "text", "a.f": 3}
    # PyYAML reads "1e-3" as a string; a float field still accepts it
    assert load_config(None, ["data.synthetic.train=1", "optim.lr=1e-3"]).optim.lr == pytest.approx(1e-3)
