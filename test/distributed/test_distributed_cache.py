"""The sharded feature cache on 2 CPU processes (gloo, loopback) equals the single-process one.

Two ranks run ``vggt-uncertainty cache`` (spawned with torch.multiprocessing, the torchrun
environment variables set by hand); the merged files must hold the same arrays, bit for bit,
as :class:`FeatureCache` building the same sequences alone in this process. Then an
interrupted run (merged file gone, one shard lost) resumes: only the lost shard is computed.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from vggt_uncertainty_ros.cli.main import main as cli_main
from vggt_uncertainty_ros.data import synth
from vggt_uncertainty_ros.distributed import DistContext, owner
from vggt_uncertainty_ros.trainer import load_config
from vggt_uncertainty_ros.trainer.shards import (
    MANIFEST_FILE,
    SHARD_DIR,
    build_cache,
    cache_arrays_equal,
    open_feature_cache,
)

REPO = Path(__file__).resolve().parents[2]
SHARD_WINDOWS = 2
WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rank_main(rank: int, world: int, port: int, argv: list[str], out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), GLOO_SOCKET_IFNAME="lo")
    code = cli_main(argv)
    Path(out_dir, f"rc{rank}").write_text(str(code))
    if code:
        raise SystemExit(code)


def _spawn(argv: list[str], out_dir: Path) -> None:
    mp.spawn(_rank_main, args=(WORLD, _free_port(), argv, str(out_dir)), nprocs=WORLD, join=True)
    assert [Path(out_dir, f"rc{r}").read_text() for r in range(WORLD)] == ["0"] * WORLD


@pytest.fixture(scope="module")
def sequences(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("seqs")
    paths = []
    for seed, n in ((0, 14), (1, 12), (2, 10)):
        res = synth.generate(root / f"s{seed}", seed=seed, n_frames=n, formats=("tum",), width=64, height=48)
        paths.append(str(res.paths["tum"]))
    return paths


def _overrides(seqs: list[str], cache_dir: Path) -> list[str]:
    listed = json.dumps([{"path": p} for p in seqs])
    return [f"data.train={listed}", "data.val_count=0", "data.synthetic.train=0", "data.synthetic.val=0",
            f"output.cache_dir={cache_dir}", "train.threads=1"]


def _argv(seqs: list[str], cache_dir: Path, *extra: str) -> list[str]:
    argv = ["cache", "--config", str(REPO / "training/configs/synthetic_tiny.yaml"), "--out", str(cache_dir),
            "--shard-windows", str(SHARD_WINDOWS), *extra]
    for item in _overrides(seqs, cache_dir):
        argv += ["--set", item]
    return argv


@pytest.mark.slow
def test_two_ranks_match_single_process_and_resume(sequences: list[str], tmp_path: Path) -> None:
    # single process: the trainer's own cache path (FeatureCache.get)
    single_dir = tmp_path / "single"
    cfg = load_config(REPO / "training/configs/synthetic_tiny.yaml", _overrides(sequences, single_dir))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cache = open_feature_cache(cfg, torch.device("cpu"), SHARD_WINDOWS)
        from vggt_uncertainty_ros.trainer.config import SequenceSpec

        specs = [SequenceSpec(path=p) for p in sequences]
        single = [cache.path_for(s) for s in specs]
        for s in specs:
            cache.get(s)
    finally:
        torch.set_num_threads(threads)

    dist_dir = tmp_path / "dist"
    _spawn(_argv(sequences, dist_dir, "--keep-shards"), tmp_path)
    for ref in single:
        merged = dist_dir / ref.name
        assert merged.exists(), merged
        assert cache_arrays_equal(ref, merged)
    manifest = json.loads((dist_dir / MANIFEST_FILE).read_text())
    assert sorted(manifest["sequences"]) == sorted(p.stem for p in single)
    assert all(e["world_size"] == WORLD for e in manifest["sequences"].values())
    n_windows = [manifest["sequences"][p.stem]["n_windows"] for p in single]
    assert n_windows[0] > SHARD_WINDOWS  # several shards per sequence, so both ranks worked on it

    # interruption: the merged file of sequence 0 and one of its shards are gone
    key = single[0].stem
    shards = sorted((dist_dir / SHARD_DIR / key).glob("*.safetensors"))
    assert len(shards) == -(-n_windows[0] // SHARD_WINDOWS)
    lost = shards[1]
    lost.unlink()
    (dist_dir / single[0].name).unlink()
    before = {p: p.stat().st_mtime_ns for p in shards if p != lost}

    # resume on one process (a world of one owns every shard): only the lost shard is computed
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg2 = load_config(REPO / "training/configs/synthetic_tiny.yaml", _overrides(sequences, dist_dir))
        report = build_cache(specs, open_feature_cache(cfg2, torch.device("cpu"), SHARD_WINDOWS), DistContext())
    finally:
        torch.set_num_threads(threads)
    assert report.built == [f"{key}/{1:06d}"]
    assert sorted(report.skipped) == sorted(f"{key}/{p.stem}" for p in before)
    assert report.reused == sequences[1:]
    assert cache_arrays_equal(single[0], dist_dir / single[0].name)
    assert not (dist_dir / SHARD_DIR / key).exists()  # merged, shards removed


def test_owner_is_round_robin_and_staggered() -> None:
    assert [owner(c, 2) for c in range(5)] == [0, 1, 0, 1, 0]
    assert [owner(c, 2, offset=1) for c in range(3)] == [1, 0, 1]
    assert [owner(c, 1, offset=7) for c in range(3)] == [0, 0, 0]
