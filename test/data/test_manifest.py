"""The dataset manifest: kinds detected, roles split, relative paths, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vggt_uncertainty_ros.data.manifest import detect_kind, load_manifest, sequences_by_role
from vggt_uncertainty_ros.errors import ConfigError, DataError


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    tum = tmp_path / "data" / "tum_seq"
    tum.mkdir(parents=True)
    (tum / "rgb.txt").write_text("# none\n")
    (tmp_path / "data" / "seq.bag").write_bytes(b"#ROSBAG V2.0\n")
    ros2 = tmp_path / "data" / "ros2_seq"
    ros2.mkdir()
    (ros2 / "metadata.yaml").write_text("rosbag2_bagfile_information: {}\n")
    (tmp_path / "data" / "one.mcap").write_bytes(b"\x89MCAP0\r\n")
    images = tmp_path / "data" / "frames"
    images.mkdir()
    (images / "1.000000.png").write_bytes(b"")
    (tmp_path / "data" / "gt.txt").write_text("1.0 0 0 0 0 0 0 1\n")
    return tmp_path


def _write(tree: Path, doc: object, name: str = "m.yaml") -> Path:
    path = tree / name
    path.write_text(json.dumps(doc))
    return path


def test_kinds_roles_and_relative_paths(tree: Path) -> None:
    doc = {
        "root": "data",
        "sequences": [
            {"path": "tum_seq", "role": "train"},
            {"path": "seq.bag", "role": "validation", "image_topic": "/camera/rgb/image_color"},
            {"path": "ros2_seq", "role": "test", "kind": "ros2"},
            "one.mcap",
            {"path": "frames", "gt": "gt.txt", "role": "train", "name": "dumped"},
        ],
    }
    for name in ("m.yaml", "m.json"):
        m = load_manifest(_write(tree, doc, name))
        assert [e.kind for e in m.entries] == ["tum", "ros1", "ros2", "ros2", "images"]
        assert [e.name for e in sequences_by_role(m, "train")] == ["tum_seq", "one", "dumped"]
        val = sequences_by_role(m.source, "val")
        assert [e.name for e in val] == ["seq"] and val[0].image_topic == "/camera/rgb/image_color"
        assert [e.name for e in m.by_role("test")] == ["ros2_seq"]
        assert m.entries[0].path == (tree / "data" / "tum_seq").resolve()
        assert m.entries[4].gt_path == (tree / "data" / "gt.txt").resolve()
    assert detect_kind(tree / "data" / "frames") == "images"


@pytest.mark.parametrize(
    ("entries", "error", "match"),
    [
        ([{"path": "nope"}], DataError, "does not exist"),
        ([{"path": "tum_seq", "role": "dev"}], ConfigError, "unknown role"),
        ([{"path": "tum_seq", "kind": "ros1"}], DataError, "looks like a tum"),
        ([{"path": "tum_seq", "colour": 1}], ConfigError, "unknown key"),
        ([{"path": "frames"}], DataError, "needs 'gt'"),
        ([{"path": "frames", "gt": "missing.txt"}], DataError, "ground-truth file"),
        ([{"path": "tum_seq"}, {"path": "tum_seq", "role": "val", "name": "x"}], ConfigError, "listed twice"),
        ([{"path": "tum_seq"}, {"path": "seq.bag", "name": "tum_seq"}], ConfigError, "appears twice"),
        ([{"role": "train"}], ConfigError, "'path' is missing"),
    ],
)
def test_bad_manifests_raise_clear_errors(tree: Path, entries: list, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        load_manifest(_write(tree, {"root": "data", "sequences": entries}))


def test_not_a_manifest(tree: Path) -> None:
    with pytest.raises(ConfigError, match="'sequences' list"):
        load_manifest(_write(tree, ["a", "b"]))
    with pytest.raises(ConfigError, match="does not exist"):
        load_manifest(tree / "absent.yaml")
    with pytest.raises(ConfigError, match="unknown role"):
        load_manifest(_write(tree, {"sequences": []})).by_role("dev")
