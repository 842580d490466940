"""torch.distributed on 2 CPU processes (gloo, loopback): sharded cache and batch evaluation.

Cache: the sharded feature cache equals the single-process one.

Two ranks run ``vggt-uncertainty cache`` (spawned with torch.multiprocessing, the torchrun
environment variables set by hand); the merged files must hold the same arrays, bit for bit,
as :class:`FeatureCache` building the same sequences alone in this process. Then an
interrupted run (merged file gone, one shard lost) resumes: only the lost shard is computed.

Evaluation: ``eval-many`` on 2 ranks writes the same per-sequence tables and pooled report as
one process, and a rerun skips every finished sequence.
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
    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        GLOO_SOCKET_IFNAME="lo",
    )
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
    return [
        f"data.train={listed}",
        "data.val_count=0",
        "data.synthetic.train=0",
        "data.synthetic.val=0",
        f"output.cache_dir={cache_dir}",
        "train.threads=1",
    ]


def _argv(seqs: list[str], cache_dir: Path, *extra: str) -> list[str]:
    argv = [
        "cache",
        "--config",
        str(REPO / "training/configs/synthetic_tiny.yaml"),
        "--out",
        str(cache_dir),
        "--shard-windows",
        str(SHARD_WINDOWS),
        *extra,
    ]
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


def _eval_argv(seqs: list[str], params: Path, out: Path) -> list[str]:
    return [
        "eval-many",
        "--data",
        *seqs,
        "--run-model",
        "--weights",
        "tiny",
        "--device",
        "cpu",
        "--params",
        str(params),
        "--no-plots",
        "--max-frames",
        "10",
        "--out",
        str(out),
    ]


@pytest.mark.slow
def test_eval_many_two_ranks_match_single_process(sequences: list[str], tmp_path: Path) -> None:
    import numpy as np
    from safetensors.numpy import load_file

    from vggt_uncertainty_ros.evaluate.batch import DONE_FILE, POOLED_FILE
    from vggt_uncertainty_ros.evaluate.config import DEFAULT_PARAMS_YAML

    params = tmp_path / "params.yaml"
    params.write_text(
        DEFAULT_PARAMS_YAML.read_text()
        .replace("window_size: 8", "window_size: 4")
        .replace("window_stride: 4", "window_stride: 2")
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert cli_main(_eval_argv(sequences, params, tmp_path / "single")) == 0
    finally:
        torch.set_num_threads(threads)
    _spawn(_eval_argv(sequences, params, tmp_path / "dist"), tmp_path)

    single = json.loads((tmp_path / "single" / POOLED_FILE).read_text())
    dist = json.loads((tmp_path / "dist" / POOLED_FILE).read_text())
    assert dist == single
    assert list(single["sequences"]) == ["s0_tum", "s1_tum", "s2_tum"]  # same folder names: parent added
    assert single["n_sequences"] == 3 and single["n_windows"] == sum(
        s["n_windows"] for s in single["sequences"].values()
    )
    d2 = []
    for name in single["sequences"]:
        a = load_file(str(tmp_path / "single" / name / DONE_FILE))
        b = load_file(str(tmp_path / "dist" / name / DONE_FILE))
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
        assert (tmp_path / "dist" / name / "report.json").is_file()
        d2.append(a["d2_rot"])
    assert single["calibration"]["rot"]["d2_mean"] == pytest.approx(float(np.mean(np.concatenate(d2))), rel=1e-12)

    # a rerun finds every sequence finished and only pools again
    from vggt_uncertainty_ros.data.manifest import ManifestEntry
    from vggt_uncertainty_ros.evaluate import EvalConfig
    from vggt_uncertainty_ros.evaluate.batch import evaluate_many
    from vggt_uncertainty_ros.evaluate.report import to_jsonable

    entries = [
        ManifestEntry(name=n, path=Path(p), role="test", kind="tum") for n, p in zip(single["sequences"], sequences)
    ]
    again = evaluate_many(entries, EvalConfig(data=Path(sequences[0]), out_dir=tmp_path), tmp_path / "dist")
    assert again.evaluated == [] and sorted(again.skipped) == sorted(single["sequences"])
    assert json.loads(json.dumps(to_jsonable(again.pooled))) == single


def test_world_of_one_and_bad_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from vggt_uncertainty_ros.distributed import barrier, init_distributed
    from vggt_uncertainty_ros.errors import ConfigError

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = init_distributed("cpu")
    assert (ctx.rank, ctx.world_size, ctx.backend, ctx.is_main, ctx.distributed) == (0, 1, "", True, False)
    barrier(ctx)  # no process group: a no-op
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ConfigError, match="outside WORLD_SIZE"):
        init_distributed("cpu")
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(ConfigError, match="not an integer"):
        init_distributed("cpu")


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    from vggt_uncertainty_ros.distributed import atomic_write

    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "x.json", fail)
    assert list(tmp_path.iterdir()) == []
    atomic_write(tmp_path / "x.json", lambda tmp: tmp.write_text("{}"))
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


@pytest.mark.slow
def test_eval_many_takes_a_manifest_role(sequences: list[str], tmp_path: Path) -> None:
    from vggt_uncertainty_ros.evaluate.batch import POOLED_FILE
    from vggt_uncertainty_ros.evaluate.config import DEFAULT_PARAMS_YAML

    params = tmp_path / "params.yaml"
    params.write_text(
        DEFAULT_PARAMS_YAML.read_text()
        .replace("window_size: 8", "window_size: 4")
        .replace("window_stride: 4", "window_stride: 2")
    )
    manifest = tmp_path / "m.json"
    roles = [("a", "train"), ("b", "test"), ("c", "validation")]
    manifest.write_text(
        json.dumps({"sequences": [{"path": p, "name": n, "role": r} for p, (n, r) in zip(sequences, roles)]})
    )
    out = tmp_path / "out"
    argv = ["eval-many", "--manifest", str(manifest), "--role", "test", "--run-model", "--weights", "tiny"]
    argv += ["--device", "cpu", "--params", str(params), "--no-plots", "--max-frames", "8", "--out", str(out)]
    assert cli_main(argv) == 0
    pooled = json.loads((out / POOLED_FILE).read_text())
    assert list(pooled["sequences"]) == ["b"] and pooled["n_windows"] > 0
    assert sorted(p.name for p in out.iterdir()) == ["b", POOLED_FILE]
    assert cli_main([*argv[:4], "dev", *argv[5:]]) == 1  # unknown role: a clear error, exit 1
