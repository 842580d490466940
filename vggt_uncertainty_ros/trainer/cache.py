"""On-disk cache of the frozen backbone's outputs, one safetensors file per sequence.

The backbone (any :class:`~vggt_uncertainty_ros.model.backbone.Backbone`, run through
``predict``) is frozen, so each window goes through it once. For every window of a sequence
the cache keeps

* ``camera_features`` ``[W, S, D]`` float32 (the backbone's head input) and, when the backbone
  gives it, ``camera_trunk_features`` (the alternative head input of the VGGT family), so
  switching ``head.input_feature`` needs no new backbone pass;
* ``T_0_i_pred`` ``[W, S, 4, 4]`` float64: predicted pose of camera i in camera 0 (OpenCV
  axes, backbone units) and ``valid`` ``[W, S]`` (frames the backbone has an estimate for);
* ``T_0_i_gt`` ``[W, S, 4, 4]`` float64: ground-truth window-relative poses (pose of camera i
  in camera 0, OpenCV axes, metres; ``T_0_0 = I``);
* ``stamps_ns`` and ``frame_index`` ``[W, S]`` int64.

A file's name is a SHA-256 over everything that determines its content: the data (absolute
path plus size and mtime of every file under it, the ground-truth file and image topic), the
window sampling, the backbone family and preprocessing mode, the backbone identity (a hash
of its architecture and weights) and the backbone dtype. Files are written atomically
(temporary file + rename) and hold no pickle.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file
from tqdm import tqdm

from vggt_uncertainty_ros.data import WindowBuilder, WindowConfig, open_sequence
from vggt_uncertainty_ros.errors import DataError
from vggt_uncertainty_ros.geometry import window_relative
from vggt_uncertainty_ros.trainer.config import SequenceSpec, WindowSamplingConfig

_log = logging.getLogger(__name__)

#: bump when the layout or the meaning of a cached array changes.
CACHE_FORMAT_VERSION = 2
FEATURE_KEYS = ("camera_features", "camera_trunk_features")
#: windows per shard (the unit of distributed work and of the DINOv2 token-cache restart).
SHARD_WINDOWS = 64


@dataclass(frozen=True)
class CachedSequence:
    """Backbone outputs and ground truth of every usable window of one sequence.

    Attributes:
        name: the sequence path, for logs.
        camera_features: ``[W, S, D]`` float32 aggregator last-layer camera token per frame.
        camera_trunk_features: ``[W, S, D]`` float32 camera-head trunk output per frame, or None
            for a backbone without one.
        T_0_i_pred: ``[W, S, 4, 4]`` float64 predicted pose of frame i in frame 0, backbone units.
        valid: ``[W, S]`` bool, frames the backbone has an estimate for.
        T_0_i_gt: ``[W, S, 4, 4]`` float64 ground-truth pose of frame i in frame 0, metres.
        stamps_ns: ``[W, S]`` int64 image stamps.
        frame_index: ``[W, S]`` int64 position of each frame in its stream.
        image_hw: (H, W) of the images given to the backbone (pixels, before its preprocessing).
        backbone_s_per_window: mean wall time of one backbone window when the file was built.
        key: the cache key (file stem).
    """

    name: str
    camera_features: np.ndarray
    camera_trunk_features: np.ndarray | None
    T_0_i_pred: np.ndarray
    valid: np.ndarray
    T_0_i_gt: np.ndarray
    stamps_ns: np.ndarray
    frame_index: np.ndarray
    image_hw: tuple[int, int]
    backbone_s_per_window: float
    key: str

    @property
    def n_windows(self) -> int:
        """Number of cached windows ``W``."""
        return int(self.T_0_i_pred.shape[0])

    def features(self, which: str) -> np.ndarray:
        """``camera_features`` or ``camera_trunk_features`` ``[W, S, D]``."""
        if which not in FEATURE_KEYS:
            raise DataError(f"unknown input feature {which!r}; expected one of {FEATURE_KEYS}")
        value = getattr(self, which)
        if value is None:
            raise DataError(f"{self.name}: the backbone gives no {which!r}; use head.input_feature camera_features")
        return value


def fingerprint_path(path: str | Path) -> list[list[Any]]:
    """``[[relative path, size, mtime_ns], ...]`` of a file or of every file under a directory.

    Raises:
        DataError: ``path`` does not exist.
    """
    root = Path(path)
    if not root.exists():
        raise DataError(f"sequence path {root} does not exist")
    if root.is_file():
        st = root.stat()
        return [[root.name, st.st_size, st.st_mtime_ns]]
    rows: list[list[Any]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fname in sorted(filenames):
            fpath = Path(dirpath) / fname
            st = fpath.stat()
            rows.append([fpath.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns])
    return rows


def cache_key(
    spec: SequenceSpec,
    window: WindowSamplingConfig,
    preprocess_mode: str,
    backbone_identity: str,
    backbone_dtype: str,
) -> str:
    """SHA-256 (hex, 32 chars) of the data fingerprint, windowing, preprocessing and backbone."""
    doc = {
        "version": CACHE_FORMAT_VERSION,
        "path": str(Path(spec.path).resolve()),
        "data": fingerprint_path(spec.path),
        "gt_path": str(Path(spec.gt_path).resolve()) if spec.gt_path else None,
        "gt": fingerprint_path(spec.gt_path) if spec.gt_path else None,
        "image_topic": spec.image_topic,
        "window": asdict(window),
        "preprocess_mode": preprocess_mode,
        "backbone": backbone_identity,
        "dtype": backbone_dtype,
    }
    blob = json.dumps(doc, sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:32]


def _window_config(window: WindowSamplingConfig) -> Any:
    return WindowConfig(
        size=window.size,
        stride=window.stride,
        keyframe_every=window.keyframe_every,
        min_keyframe_gap_s=window.min_keyframe_gap_s,
    )


def iter_windows(spec: SequenceSpec, window: WindowSamplingConfig) -> Iterator[list[Any]]:
    """Yield the frames (``data.Frame``) of each window of a sequence, in stream order.

    Windows come from the shared :class:`~vggt_uncertainty_ros.data.WindowBuilder` rule.
    Windows where a frame lacks ground truth are skipped (counted in the log).

    Raises:
        DataError: the sequence cannot be read.
    """
    kwargs: dict[str, Any] = {}
    if spec.image_topic:
        kwargs["image_topic"] = spec.image_topic
    builder = WindowBuilder(_window_config(window))
    skipped = taken = 0
    with open_sequence(spec.path, spec.gt_path, **kwargs) as reader:
        for frame in reader.frames():
            win = builder.push(frame, frame.stamp_ns)
            if win is None:
                continue
            frames = list(_window_items(win))
            if any(f.T_world_cam is None for f in frames):
                skipped += 1
                continue
            taken += 1
            yield frames
            if window.max_windows_per_sequence and taken >= window.max_windows_per_sequence:
                break
    if skipped:
        _log.warning("%s: skipped %d window(s) with frames lacking ground truth", spec.path, skipped)


def _window_items(win: Any) -> list[Any]:
    """The frames of a ``data.Window`` (its ``items``)."""
    items = getattr(win, "items", None)
    if items is None:
        raise DataError(f"unexpected window object {type(win).__name__}: no 'items'")
    return list(items)


def _relative_gt(frames: list[Any]) -> np.ndarray:
    T_world_cam = np.stack([np.asarray(f.T_world_cam, dtype=np.float64) for f in frames])
    return np.asarray(window_relative(T_world_cam), dtype=np.float64)


def run_backbone_window(backbone: Any, frames: list[Any], frame_ids: list[Any] | None = None) -> Any:
    """Run the frozen backbone on one window: ``backbone.predict`` of the frames' images.

    With ``frame_ids``, frames an earlier overlapping window already saw (same id) reuse the
    backbone's per-frame work (the DINOv2 / patch-encoder token cache).

    Returns:
        The :class:`~vggt_uncertainty_ros.model.backbone.WindowPrediction`.
    """
    return backbone.predict([f.image for f in frames], frame_ids=frame_ids)


def _sync(device: Any) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


class FeatureCache:
    """Backbone outputs per sequence on disk, built on first use.

    Args:
        cache_dir: directory of the ``<key>.safetensors`` files.
        model: the frozen :class:`~vggt_uncertainty_ros.model.backbone.Backbone`.
        identity: ``model.identity()``.
        device: torch device of ``model``.
        dtype: torch dtype of the backbone's compute.
        preprocess_mode: ``<family>:<mode>`` (part of the cache key).
        window: window sampling section of the config.
        shard_windows: windows per shard; the DINOv2 token cache restarts at every shard, so
            single-process and sharded builds with the same value give identical arrays.
    """

    def __init__(
        self,
        cache_dir: str | Path,
        model: Any,
        identity: str,
        device: torch.device,
        dtype: torch.dtype,
        preprocess_mode: str,
        window: WindowSamplingConfig,
        shard_windows: int = 0,
    ) -> None:
        self.shard_windows = int(shard_windows) if shard_windows else SHARD_WINDOWS
        if self.shard_windows < 1:
            raise DataError(f"shard_windows must be >= 1, got {shard_windows}")
        self.cache_dir = Path(cache_dir)
        self.model = model
        self.identity = identity
        self.device = device
        self.dtype = dtype
        self.preprocess_mode = preprocess_mode
        self.window = window
        self.hits = 0
        self.misses = 0
        self.backbone_window_times_s: list[float] = []
        self._shards_encoded = 0  # tags frame ids: no per-frame work is reused across shards

    def _dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    def path_for(self, spec: SequenceSpec) -> Path:
        """Cache file of ``spec`` under the current backbone and window settings."""
        key = cache_key(spec, self.window, self.preprocess_mode, self.identity, self._dtype_name())
        return self.cache_dir / f"{key}.safetensors"

    def get(self, spec: SequenceSpec) -> CachedSequence:
        """Load the cached windows of ``spec``, running the backbone first on a miss.

        Raises:
            DataError: the sequence yields no usable window, or a cache file is corrupt.
        """
        path = self.path_for(spec)
        if path.exists():
            self.hits += 1
            _log.info("feature cache hit: %s -> %s", spec.path, path.name)
            return load_cached(path, name=spec.path)
        self.misses += 1
        _log.info("feature cache miss: %s; running the backbone", spec.path)
        cached = self._build(spec, path)
        return cached

    def _build(self, spec: SequenceSpec, path: Path) -> CachedSequence:
        parts: list[EncodedWindows] = []
        chunk: list[list[Any]] = []
        for frames in tqdm(
            iter_windows(spec, self.window),
            desc=f"backbone {Path(spec.path).name}",
            unit="win",
            leave=False,
            disable=None,
        ):
            chunk.append(frames)
            if len(chunk) == self.shard_windows:
                parts.append(self.encode(chunk))
                chunk = []
        if chunk:
            parts.append(self.encode(chunk))
        if not parts:
            raise DataError(
                f"{spec.path}: no window of {self.window.size} frames with ground truth "
                f"(stride {self.window.stride}); is the sequence too short or missing ground truth?"
            )
        merged = EncodedWindows.concatenate(parts)
        self.backbone_window_times_s.extend(merged.times_s)
        self.write_sequence(path, spec, merged)
        _log.info(
            "cached %d windows of %s (%.3f s/window) -> %s", merged.n_windows, spec.path, merged.mean_time_s(), path
        )
        return load_cached(path, name=spec.path)

    def encode(self, windows: list[list[Any]]) -> EncodedWindows:
        """Run the backbone over consecutive windows (one shard) with a fresh DINOv2 token cache.

        The token cache starts empty at every shard, so a shard's arrays do not depend on
        which process computed it or on the shards before it: that is what makes a sharded
        (distributed) build bit-identical to a single-process one.
        """
        self._shards_encoded += 1
        shard = self._shards_encoded
        feats: dict[str, list[np.ndarray]] = {k: [] for k in FEATURE_KEYS}
        T_pred: list[np.ndarray] = []
        valid: list[np.ndarray] = []
        gt: list[np.ndarray] = []
        stamps: list[list[int]] = []
        index: list[list[int]] = []
        times: list[float] = []
        image_hw = (0, 0)
        for frames in windows:
            _sync(self.device)
            t0 = time.perf_counter()
            pred = run_backbone_window(self.model, frames, [(shard, int(f.index)) for f in frames])
            _sync(self.device)
            times.append(time.perf_counter() - t0)
            image_hw = tuple(int(v) for v in frames[0].image.shape[:2])
            feats["camera_features"].append(pred.features)
            if "camera_trunk_features" in pred.aux:
                feats["camera_trunk_features"].append(pred.aux["camera_trunk_features"])
            T_pred.append(np.asarray(pred.T_0_i, dtype=np.float64))
            valid.append(np.asarray(pred.valid, dtype=bool))
            gt.append(_relative_gt(frames))
            stamps.append([int(f.stamp_ns) for f in frames])
            index.append([int(f.index) for f in frames])
        arrays = {
            "camera_features": np.ascontiguousarray(np.stack(feats["camera_features"]), dtype=np.float32),
            "T_0_i_pred": np.ascontiguousarray(np.stack(T_pred), dtype=np.float64),
            "valid": np.stack(valid).astype(np.uint8),
            "T_0_i_gt": np.ascontiguousarray(np.stack(gt), dtype=np.float64),
            "stamps_ns": np.asarray(stamps, dtype=np.int64),
            "frame_index": np.asarray(index, dtype=np.int64),
        }
        if len(feats["camera_trunk_features"]) == len(T_pred):
            arrays["camera_trunk_features"] = np.ascontiguousarray(
                np.stack(feats["camera_trunk_features"]), dtype=np.float32
            )
        return EncodedWindows(arrays=arrays, image_hw=image_hw, times_s=times)

    def write_sequence(self, path: Path, spec: SequenceSpec, enc: EncodedWindows) -> None:
        """Write one sequence's cache file atomically (temporary file + rename)."""
        meta = {
            "format_version": str(CACHE_FORMAT_VERSION),
            "sequence": str(spec.path),
            "image_hw": json.dumps(list(enc.image_hw)),
            "backbone_identity": self.identity,
            "backbone_family": str(getattr(self.model, "name", "")),
            "backbone_s_per_window": repr(enc.mean_time_s()),
        }
        _atomic_save(enc.arrays, path, meta)


@dataclass
class EncodedWindows:
    """Backbone outputs of consecutive windows (one shard, or a whole sequence).

    Attributes:
        arrays: the cache arrays (see the module docstring), leading dimension ``W``.
        image_hw: (H, W) of the backbone input, pixels.
        times_s: wall time of each window's backbone forward, seconds.
    """

    arrays: dict[str, np.ndarray]
    image_hw: tuple[int, int]
    times_s: list[float]

    @property
    def n_windows(self) -> int:
        """Number of windows ``W``."""
        return int(self.arrays["T_0_i_pred"].shape[0])

    def mean_time_s(self) -> float:
        """Mean backbone seconds per window, the first (warm-up) window left out when there are several."""
        timed = self.times_s[1:] if len(self.times_s) > 1 else self.times_s
        return float(np.mean(timed)) if timed else float("nan")

    @staticmethod
    def concatenate(parts: list[EncodedWindows]) -> EncodedWindows:
        """Stack shards in order along the window axis.

        Raises:
            DataError: ``parts`` is empty or the shards disagree on the image size.
        """
        if not parts:
            raise DataError("no shard to concatenate")
        sizes = {p.image_hw for p in parts}
        if len(sizes) != 1:
            raise DataError(f"shards disagree on the backbone image size: {sorted(sizes)}")
        arrays = {k: np.ascontiguousarray(np.concatenate([p.arrays[k] for p in parts])) for k in parts[0].arrays}
        return EncodedWindows(arrays=arrays, image_hw=parts[0].image_hw, times_s=[t for p in parts for t in p.times_s])


def _atomic_save(arrays: dict[str, np.ndarray], path: Path, meta: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".safetensors")
    os.close(fd)
    try:
        save_file(arrays, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_cached(path: str | Path, name: str | None = None) -> CachedSequence:
    """Read one cache file.

    Raises:
        DataError: the file is unreadable, from another format version, or lacks arrays.
    """
    path = Path(path)
    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
        arrays = load_file(str(path))
    except (OSError, ValueError, SafetensorError) as err:
        raise DataError(f"feature cache file {path} is unreadable: {err}") from err
    if meta.get("format_version") != str(CACHE_FORMAT_VERSION):
        raise DataError(
            f"feature cache file {path} has format {meta.get('format_version')!r}, "
            f"expected {CACHE_FORMAT_VERSION}; delete it to rebuild"
        )
    needed = ("camera_features", "T_0_i_pred", "valid", "T_0_i_gt", "stamps_ns", "frame_index")
    missing = [k for k in needed if k not in arrays]
    if missing:
        raise DataError(f"feature cache file {path} lacks {missing}")
    hw = json.loads(meta["image_hw"])
    return CachedSequence(
        name=name or meta.get("sequence", str(path)),
        camera_features=arrays["camera_features"],
        camera_trunk_features=arrays.get("camera_trunk_features"),
        T_0_i_pred=arrays["T_0_i_pred"],
        valid=arrays["valid"].astype(bool),
        T_0_i_gt=arrays["T_0_i_gt"],
        stamps_ns=arrays["stamps_ns"],
        frame_index=arrays["frame_index"],
        image_hw=(int(hw[0]), int(hw[1])),
        backbone_s_per_window=float(meta.get("backbone_s_per_window", "nan")),
        key=path.stem,
    )
