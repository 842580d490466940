"""A dataset manifest: many sequences, each with its role (train, validation, test), in one file.

YAML or JSON (by suffix; JSON is YAML, so either parser reads both)::

    root: /data/tum            # optional; relative paths resolve against it, else the manifest's folder
    sequences:
      - path: rgbd_dataset_freiburg1_desk          # TUM RGB-D folder (rgb.txt, groundtruth.txt)
        role: train
      - path: rgbd_dataset_freiburg1_xyz.bag       # TUM ROS 1 bag (ground truth from /tf)
        role: validation
      - path: my_ros2_bag                          # ROS 2 bag folder or .mcap
        role: test
        image_topic: /camera/color/image_raw
      - path: frames/                              # image folder named by stamp + TUM ground truth
        gt: frames_groundtruth.txt
        role: train
        name: frames

Keys of an entry: ``path`` (required), ``role`` (``train``, ``val``/``validation``, ``test``;
default ``train``), ``name`` (default: the file or folder name; unique), ``kind`` (optional
check: ``tum``, ``ros1``, ``ros2``, ``images``), ``gt`` (TUM ``T_world_cam`` trajectory,
metres) and ``image_topic`` (bags). A path may appear under one role only, so no sequence
leaks from training into validation or test.

The trainer (``data.manifest``), ``calibrate`` and the evaluator (``eval-many``) all read
sequences through :func:`sequences_by_role`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vggt_uncertainty_ros.errors import ConfigError, DataError

__all__ = ["KINDS", "ROLES", "DatasetManifest", "ManifestEntry", "detect_kind", "load_manifest", "sequences_by_role"]

ROLES = ("train", "val", "test")
_ROLE_ALIASES = {"train": "train", "training": "train", "val": "val", "validation": "val", "test": "test"}
KINDS = ("tum", "ros1", "ros2", "images")
_ENTRY_KEYS = {"path", "role", "name", "kind", "gt", "image_topic"}


@dataclass(frozen=True)
class ManifestEntry:
    """One sequence of a manifest.

    Attributes:
        name: unique short name (report folder names, logs).
        path: absolute path of the TUM folder, bag, or image folder.
        role: ``train``, ``val`` or ``test``.
        kind: ``tum``, ``ros1``, ``ros2`` or ``images`` (detected from the path).
        gt_path: absolute path of a TUM ground-truth file (``T_world_cam``, metres), or None
            for the sequence's own ground truth.
        image_topic: image topic of a bag, or None for the reader's default.
    """

    name: str
    path: Path
    role: str
    kind: str
    gt_path: Path | None = None
    image_topic: str | None = None


@dataclass(frozen=True)
class DatasetManifest:
    """The parsed manifest: its file and its entries in file order."""

    source: Path
    entries: tuple[ManifestEntry, ...]

    def by_role(self, role: str) -> list[ManifestEntry]:
        """Entries with ``role`` (``train``, ``val``/``validation`` or ``test``), in file order.

        Raises:
            ConfigError: unknown role.
        """
        want = _role(role, "role")
        return [e for e in self.entries if e.role == want]


def detect_kind(path: Path) -> str:
    """``tum``, ``ros1``, ``ros2`` or ``images`` for a sequence path (the rules of ``open_sequence``).

    Raises:
        DataError: the path does not exist.
    """
    if not path.exists():
        raise DataError(f"sequence path {path} does not exist")
    if path.is_file():
        if path.suffix == ".bag":
            return "ros1"
        if path.suffix in (".mcap", ".db3"):
            return "ros2"
        raise DataError(f"{path}: a file sequence must be a ROS 1 .bag or a ROS 2 .mcap/.db3")
    if (path / "rgb.txt").is_file():
        return "tum"
    if (path / "metadata.yaml").is_file() or any(path.glob("*.mcap")) or any(path.glob("*.db3")):
        return "ros2"
    return "images"


def _role(value: Any, where: str) -> str:
    role = _ROLE_ALIASES.get(str(value).strip().lower())
    if role is None:
        raise ConfigError(f"{where}: unknown role {value!r}; expected train, val (validation) or test")
    return role


def _entry(raw: Any, i: int, base: Path, source: Path) -> ManifestEntry:
    where = f"{source}: sequences[{i}]"
    if isinstance(raw, str):
        raw = {"path": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping with 'path', got {type(raw).__name__}")
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed {sorted(_ENTRY_KEYS)}")
    if not raw.get("path"):
        raise ConfigError(f"{where}: 'path' is missing")
    path = (base / str(raw["path"])).resolve()
    kind = detect_kind(path)
    if raw.get("kind") is not None:
        want = str(raw["kind"]).lower()
        if want not in KINDS:
            raise ConfigError(f"{where}: unknown kind {raw['kind']!r}; expected one of {KINDS}")
        if want != kind:
            raise DataError(f"{where}: {path} looks like a {kind} sequence, but the manifest says {want}")
    gt = (base / str(raw["gt"])).resolve() if raw.get("gt") else None
    if gt is not None and not gt.is_file():
        raise DataError(f"{where}: ground-truth file {gt} does not exist")
    if kind == "images" and gt is None and not (path / "groundtruth.txt").is_file():
        raise DataError(f"{where}: image folder {path} needs 'gt' (a TUM trajectory) or a groundtruth.txt in it")
    name = str(raw.get("name") or (path.stem if path.is_file() else path.name))
    topic = raw.get("image_topic")
    return ManifestEntry(
        name=name,
        path=path,
        role=_role(raw.get("role", "train"), where),
        kind=kind,
        gt_path=gt,
        image_topic=str(topic) if topic else None,
    )


def load_manifest(path: str | Path) -> DatasetManifest:
    """Read and check a manifest (every path must exist).

    Raises:
        ConfigError: the file is not a mapping with a ``sequences`` list, an entry is malformed,
            names repeat, or a path appears twice.
        DataError: a sequence or ground-truth path does not exist, or its kind contradicts ``kind``.
    """
    source = Path(path).resolve()
    try:
        text = source.read_text(encoding="utf-8")
        doc = json.loads(text) if source.suffix == ".json" else yaml.safe_load(text)
    except FileNotFoundError as err:
        raise ConfigError(f"dataset manifest {source} does not exist") from err
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise ConfigError(f"dataset manifest {source} is unreadable: {err}") from err
    if not isinstance(doc, Mapping) or not isinstance(doc.get("sequences"), list):
        raise ConfigError(f"dataset manifest {source}: expected a mapping with a 'sequences' list")
    base = source.parent
    if doc.get("root"):
        base = (source.parent / str(doc["root"])).resolve()
    entries = tuple(_entry(raw, i, base, source) for i, raw in enumerate(doc["sequences"]))
    seen_names: dict[str, int] = {}
    seen_paths: dict[tuple[Path, Path | None, str | None], ManifestEntry] = {}
    for e in entries:
        if e.name in seen_names:
            raise ConfigError(f"{source}: sequence name {e.name!r} appears twice; give one of them a 'name'")
        seen_names[e.name] = 1
        ident = (e.path, e.gt_path, e.image_topic)
        if ident in seen_paths:
            other = seen_paths[ident]
            raise ConfigError(f"{source}: {e.path} is listed twice (roles {other.role} and {e.role})")
        seen_paths[ident] = e
    return DatasetManifest(source=source, entries=entries)


def sequences_by_role(manifest: str | Path | DatasetManifest, role: str) -> list[ManifestEntry]:
    """The sequences of ``manifest`` (a file or a loaded manifest) with ``role``, in file order."""
    loaded = manifest if isinstance(manifest, DatasetManifest) else load_manifest(manifest)
    return loaded.by_role(role)
