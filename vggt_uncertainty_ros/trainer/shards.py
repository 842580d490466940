"""Building the feature cache in shards, on one process or on every rank of a torchrun job.

The windows of each sequence are cut into shards of ``shard_windows`` consecutive windows
(:data:`~vggt_uncertainty_ros.trainer.cache.SHARD_WINDOWS` by default). Shard ``c`` of
sequence ``i`` belongs to rank ``(c + i) mod world_size``
(:func:`vggt_uncertainty_ros.distributed.owner`): every rank reads every sequence (cheap),
runs the backbone only on its own shards and writes each one atomically to
``CACHE/shards/<key>/<c>.safetensors``. After a barrier, rank 0 concatenates the shards of
every sequence in order into the ordinary ``CACHE/<key>.safetensors`` file (the one
:class:`~vggt_uncertainty_ros.trainer.cache.FeatureCache` and ``train`` read), records it in
``CACHE/cache_manifest.json`` and removes the shards.

Resume: a sequence whose merged file exists is skipped; a shard file that exists is not
recomputed, so an interrupted run (killed ranks, lost node) restarts where it stopped. A
shard's arrays depend only on its windows (the DINOv2 token cache restarts at every shard),
so the merged file is bit-identical to a single-process build on CPU float32 whatever the
world size.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file

from vggt_uncertainty_ros.distributed import DistContext, all_ok, barrier, owner
from vggt_uncertainty_ros.errors import DataError
from vggt_uncertainty_ros.model.backbone import build_backbone
from vggt_uncertainty_ros.model.device import resolve_dtype
from vggt_uncertainty_ros.trainer.cache import (
    CACHE_FORMAT_VERSION,
    EncodedWindows,
    FeatureCache,
    _atomic_save,
    iter_windows,
)
from vggt_uncertainty_ros.trainer.config import SequenceSpec, TrainConfig

__all__ = ["MANIFEST_FILE", "ShardReport", "build_cache", "open_feature_cache"]

_log = logging.getLogger(__name__)

MANIFEST_FILE = "cache_manifest.json"
SHARD_DIR = "shards"


@dataclass
class ShardReport:
    """What :func:`build_cache` did on this rank (shard names are ``<key>/<index>``).

    Attributes:
        built: shards this rank computed.
        skipped: shards of this rank found finished on disk (resume).
        reused: sequences whose merged file already existed (not read again).
        merged: sequences merged by this rank (rank 0 only).
        files: merged cache file of every sequence, in input order.
        n_windows: windows of every sequence, in input order.
    """

    built: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    n_windows: list[int] = field(default_factory=list)


def open_feature_cache(cfg: TrainConfig, device: torch.device, shard_windows: int = 0) -> FeatureCache:
    """Build the frozen backbone of ``cfg`` (``model.backbone.build_backbone``) on ``device`` and
    wrap it in a :class:`FeatureCache`."""
    dtype = resolve_dtype(cfg.backbone.dtype, device)
    model = build_backbone(cfg.backbone, device, dtype)  # attention kernel and compile per the spec
    return FeatureCache(
        cfg.output.cache_dir,
        model,
        model.identity(),
        device,
        dtype,
        f"{model.name}:{cfg.backbone.resolved_preprocess_mode}",
        cfg.window,
        shard_windows=shard_windows,
    )


def _shard_path(cache: FeatureCache, key: str, index: int) -> Path:
    return cache.cache_dir / SHARD_DIR / key / f"{index:06d}.safetensors"


def _write_shard(path: Path, enc: EncodedWindows) -> None:
    meta = {
        "format_version": str(CACHE_FORMAT_VERSION),
        "image_hw": json.dumps(list(enc.image_hw)),
        "times_s": json.dumps(enc.times_s),
    }
    _atomic_save(enc.arrays, path, meta)


def _read_shard(path: Path) -> EncodedWindows:
    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
        arrays = load_file(str(path))
        hw = json.loads(meta["image_hw"])
        times = [float(t) for t in json.loads(meta["times_s"])]
    except (OSError, ValueError, KeyError, SafetensorError) as err:
        raise DataError(f"cache shard {path} is unreadable ({err}); delete it to recompute") from err
    if meta.get("format_version") != str(CACHE_FORMAT_VERSION):
        raise DataError(f"cache shard {path} has format {meta.get('format_version')!r}; delete it to recompute")
    return EncodedWindows(arrays=arrays, image_hw=(int(hw[0]), int(hw[1])), times_s=times)


def _build_own_shards(
    spec: SequenceSpec, seq_index: int, key: str, cache: FeatureCache, ctx: DistContext, report: ShardReport
) -> int:
    """Compute this rank's missing shards of one sequence; returns the sequence's window count."""
    n = 0
    chunk: list[list[Any]] = []

    def flush(index: int) -> None:
        name = f"{key}/{index:06d}"
        if owner(index, ctx.world_size, seq_index) != ctx.rank:
            return
        path = _shard_path(cache, key, index)
        if path.exists():
            report.skipped.append(name)
            return
        _write_shard(path, cache.encode(chunk))
        report.built.append(name)

    for frames in iter_windows(spec, cache.window):
        index = n // cache.shard_windows
        mine = owner(index, ctx.world_size, seq_index) == ctx.rank
        if mine and not _shard_path(cache, key, index).exists():
            chunk.append(frames)  # frames of others' (or finished) shards are read, not kept
        n += 1
        if n % cache.shard_windows == 0:
            flush(index)
            chunk = []
    if n % cache.shard_windows:
        flush(n // cache.shard_windows)
    return n


def _merge(spec: SequenceSpec, key: str, n_windows: int, cache: FeatureCache, keep_shards: bool) -> None:
    n_shards = math.ceil(n_windows / cache.shard_windows)
    paths = [_shard_path(cache, key, c) for c in range(n_shards)]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise DataError(f"{spec.path}: cache shards {missing} are missing after every rank finished")
    merged = EncodedWindows.concatenate([_read_shard(p) for p in paths])
    if merged.n_windows != n_windows:
        raise DataError(f"{spec.path}: shards hold {merged.n_windows} windows, expected {n_windows}")
    cache.write_sequence(cache.cache_dir / f"{key}.safetensors", spec, merged)
    if not keep_shards:
        shutil.rmtree(cache.cache_dir / SHARD_DIR / key, ignore_errors=True)


def _write_manifest(cache: FeatureCache, specs: Sequence[SequenceSpec], report: ShardReport, ctx: DistContext) -> Path:
    path = cache.cache_dir / MANIFEST_FILE
    doc: dict[str, Any] = {"format_version": CACHE_FORMAT_VERSION, "sequences": {}}
    if path.exists():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            _log.warning("%s is unreadable; rewriting it", path)
    doc.setdefault("sequences", {})
    for spec, file, n in zip(specs, report.files, report.n_windows):
        doc["sequences"][file.stem] = {
            "path": spec.path,
            "gt_path": spec.gt_path,
            "image_topic": spec.image_topic,
            "file": file.name,
            "n_windows": n,
            "n_shards": math.ceil(n / cache.shard_windows) if n else None,
            "window": asdict(cache.window),
            "preprocess_mode": cache.preprocess_mode,
            "backbone_identity": cache.identity,
            "dtype": str(cache.dtype).removeprefix("torch."),
            "shard_windows": cache.shard_windows,
            "world_size": ctx.world_size,
        }
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def build_cache(
    specs: Sequence[SequenceSpec], cache: FeatureCache, ctx: DistContext, keep_shards: bool = False
) -> ShardReport:
    """Fill the feature cache for ``specs`` with every rank of ``ctx`` (a collective call).

    Every rank must call it with the same ``specs`` and settings. Returns this rank's report;
    after it returns, every merged file exists on every rank's view of the cache directory
    (a shared file system across nodes).

    Raises:
        DataError: a sequence is unreadable or yields no window (on every rank alike), or a
            rank failed (the others then stop too instead of waiting forever).
    """
    report = ShardReport()
    pending: list[tuple[int, SequenceSpec, str, int]] = []
    error: DataError | None = None
    for i, spec in enumerate(specs):
        final = cache.path_for(spec)
        report.files.append(final)
        if final.exists():
            report.reused.append(spec.path)
            report.n_windows.append(_meta_n(final))
            continue
        try:
            n = _build_own_shards(spec, i, final.stem, cache, ctx, report)
        except DataError as err:
            error = err
            break
        if n == 0:
            error = DataError(
                f"{spec.path}: no window of {cache.window.size} frames with ground truth "
                f"(stride {cache.window.stride}); is the sequence too short or missing ground truth?"
            )
            break
        report.n_windows.append(n)
        pending.append((i, spec, final.stem, n))
    if not all_ok(ctx, error is None):
        raise error or DataError("another rank failed while building the feature cache; see its log")
    barrier(ctx)
    if ctx.is_main:
        try:
            for _, spec, key, n in pending:
                _merge(spec, key, n, cache, keep_shards)
                report.merged.append(spec.path)
            _write_manifest(cache, specs, report, ctx)
            shard_root = cache.cache_dir / SHARD_DIR
            if shard_root.is_dir() and not any(shard_root.iterdir()):
                shard_root.rmdir()
        except DataError as err:
            error = err
    if not all_ok(ctx, error is None):
        raise error or DataError("rank 0 failed to merge the feature cache shards; see its log")
    _log.info(
        "rank %d: built %d shard(s), skipped %d finished, reused %d sequence(s), merged %d",
        ctx.rank,
        len(report.built),
        len(report.skipped),
        len(report.reused),
        len(report.merged),
    )
    return report


def _meta_n(path: Path) -> int:
    """Window count of a merged cache file, read from its header only."""
    try:
        with safe_open(str(path), framework="numpy") as fh:
            return int(fh.get_slice("T_0_i_pred").get_shape()[0])
    except (OSError, ValueError, SafetensorError) as err:
        raise DataError(f"feature cache file {path} is unreadable: {err}") from err


def cache_arrays_equal(a: Path, b: Path) -> bool:
    """True when two cache files hold the same arrays, bit for bit (timing metadata aside)."""
    xa, xb = load_file(str(a)), load_file(str(b))
    return xa.keys() == xb.keys() and all(
        xa[k].dtype == xb[k].dtype and xa[k].shape == xb[k].shape and xa[k].tobytes() == xb[k].tobytes() for k in xa
    )
