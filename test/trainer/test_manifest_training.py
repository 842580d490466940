"""A dataset manifest drives a multi-sequence training run (tiny backbone, a few steps).

Two training sequences (a TUM folder, and a plain image folder with a TUM ground-truth file),
one validation and one test sequence: the run trains on exactly the training windows,
validates on the validation ones and never touches the test sequence.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vggt_uncertainty_ros.data import synth
from vggt_uncertainty_ros.data.manifest import load_manifest
from vggt_uncertainty_ros.trainer import load_config, train
from vggt_uncertainty_ros.trainer.cache import load_cached
from vggt_uncertainty_ros.trainer.data import manifest_spec, split_sequences

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_manifest_drives_training(tmp_path: Path) -> None:
    tum = {}
    for seed, n in ((0, 12), (1, 10), (2, 10), (3, 10)):
        tum[seed] = synth.generate(
            tmp_path / "data" / f"s{seed}", seed=seed, n_frames=n, formats=("tum",), width=64, height=48
        ).paths["tum"]
    manifest = tmp_path / "dataset.yaml"
    manifest.write_text(
        json.dumps(
            {
                "sequences": [
                    {"path": str(tum[0]), "role": "train", "name": "tum0"},
                    {
                        "path": str(tum[1] / "rgb"),
                        "gt": str(tum[1] / "groundtruth.txt"),
                        "role": "train",
                        "name": "frames1",
                    },
                    {"path": str(tum[2]), "role": "validation", "name": "tum2"},
                    {"path": str(tum[3]), "role": "test", "name": "tum3"},
                ]
            }
        )
    )
    cache_dir = tmp_path / "cache"
    cfg = load_config(
        REPO / "training/configs/synthetic_tiny.yaml",
        [
            "data.synthetic.train=0",
            "data.synthetic.val=0",
            f"data.manifest={manifest}",
            f"output.cache_dir={cache_dir}",
            f"output.run_dir={tmp_path / 'run'}",
            "output.tensorboard=false",
            "train.iterations=4",
            "train.val_every=2",
            "train.log_every=2",
        ],
    )
    train_specs, val_specs = split_sequences(cfg.data, cfg.output.cache_dir, cfg.train.seed)
    entries = load_manifest(manifest)
    assert train_specs == [manifest_spec(e) for e in entries.by_role("train")]
    assert val_specs == [manifest_spec(e) for e in entries.by_role("val")]

    result = train(cfg)
    assert result.status == "completed" and result.step == 4
    assert result.cache_misses == 3  # two training + one validation sequence; the test one is left alone
    cached = {load_cached(p).name: load_cached(p).n_windows for p in cache_dir.glob("*.safetensors")}
    assert result.n_train_windows == cached[train_specs[0].path] + cached[train_specs[1].path]
    assert result.n_val_windows == cached[val_specs[0].path]
    assert str(tum[3]) not in cached
    assert all(n > 0 for n in cached.values())
