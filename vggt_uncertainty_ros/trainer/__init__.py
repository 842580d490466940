"""Library part of the offline trainer: config, feature cache, data, loop, logs, charts.

``train(load_config("config/train.yaml"))`` runs a whole training run; the CLI
(``vggt-uncertainty train`` / ``charts``) only parses arguments around these functions.
"""

from vggt_uncertainty_ros.trainer.config import TrainConfig, load_config, parse_overrides, save_run_config
from vggt_uncertainty_ros.trainer.loop import TrainResult, calibration_score, train

__all__ = [
    "TrainConfig",
    "TrainResult",
    "calibration_score",
    "load_config",
    "parse_overrides",
    "save_run_config",
    "train",
]
