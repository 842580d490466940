"""Compare the two head inputs (``camera_features`` vs ``camera_trunk_features``).

Trains the head twice with the same configuration, seed and data, once per input feature
(the feature cache holds both, so the backbone runs once), and prints the validation
metrics side by side as a markdown table. Example (the numbers in training/README.md):

    python training/compare_head_inputs.py --config config/train.yaml --out runs/compare_inputs

Any ``--set key=value`` override applies to both runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from vggt_uncertainty_ros.calibration import (
    COVERAGE_ROT_95,
    COVERAGE_TRANS_95,
    D2_ROT_MEAN,
    D2_TRANS_MEAN,
    NLL_ROT_PER_DOF,
    NLL_TRANS_PER_DOF,
    SPEARMAN_ROT,
    SPEARMAN_TRANS,
)
from vggt_uncertainty_ros.trainer import load_config, train

FEATURES = ("camera_features", "camera_trunk_features")
ROWS = (
    "loss/pose_uncertainty_nll",
    D2_ROT_MEAN,
    D2_TRANS_MEAN,
    COVERAGE_ROT_95,
    COVERAGE_TRANS_95,
    NLL_ROT_PER_DOF,
    NLL_TRANS_PER_DOF,
    SPEARMAN_ROT,
    SPEARMAN_TRANS,
    "calibration/score",
)


def main(argv: list[str] | None = None) -> int:
    """Run both trainings and print the comparison table; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="parent of the two run directories")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    results = {}
    for feature in FEATURES:
        cfg = load_config(
            args.config, [*args.overrides, f"head.input_feature={feature}", f"output.run_dir={args.out / feature}"]
        )
        results[feature] = train(cfg)
    print(f"| validation metric (step {results[FEATURES[0]].step}) | " + " | ".join(f"`{f}`" for f in FEATURES) + " |")
    print("|---|" + "---|" * len(FEATURES))
    for name in ROWS:
        cells = " | ".join(f"{results[f].val_metrics.get(name, float('nan')):.4g}" for f in FEATURES)
        print(f"| `{name}` | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
