"""The feature-cache key follows data, windowing, preprocessing and backbone; bad files are refused."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from vggt_uncertainty_ros.errors import DataError
from vggt_uncertainty_ros.trainer.cache import cache_key, load_cached
from vggt_uncertainty_ros.trainer.config import SequenceSpec, WindowSamplingConfig


@pytest.fixture
def seq(tmp_path: Path) -> SequenceSpec:
    root = tmp_path / "seq"
    (root / "rgb").mkdir(parents=True)
    (root / "rgb.txt").write_text("1.0 rgb/a.png\n")
    (root / "rgb" / "a.png").write_bytes(b"x" * 10)
    return SequenceSpec(path=str(root))


def test_key_is_stable_and_sensitive(seq: SequenceSpec) -> None:
    win = WindowSamplingConfig()
    base = cache_key(seq, win, "crop", "abc", "float32")
    assert cache_key(seq, win, "crop", "abc", "float32") == base
    assert cache_key(seq, replace(win, stride=2), "crop", "abc", "float32") != base
    assert cache_key(seq, win, "pad", "abc", "float32") != base
    assert cache_key(seq, win, "crop", "abd", "float32") != base
    assert cache_key(seq, win, "crop", "abc", "bfloat16") != base
    assert cache_key(replace(seq, image_topic="/cam"), win, "crop", "abc", "float32") != base
    # touching or growing a data file changes the key
    img = Path(seq.path) / "rgb" / "a.png"
    st = img.stat()
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    touched = cache_key(seq, win, "crop", "abc", "float32")
    assert touched != base
    img.write_bytes(b"x" * 11)
    assert cache_key(seq, win, "crop", "abc", "float32") not in (base, touched)


def test_missing_sequence_and_corrupt_cache_raise(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        cache_key(SequenceSpec(path=str(tmp_path / "nope")), WindowSamplingConfig(), "crop", "abc", "float32")
    bad = tmp_path / "0123.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(DataError, match="unreadable"):
        load_cached(bad)
