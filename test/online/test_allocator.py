"""The node's host-memory policy: glibc's mmap threshold is pinned."""

from __future__ import annotations

import platform

import pytest

from vggt_uncertainty_ros.online.allocator import pin_mmap_threshold


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_pin_mmap_threshold_applies_on_glibc():
    assert pin_mmap_threshold(1 << 20) is True


def test_pin_mmap_threshold_rejects_a_non_positive_threshold():
    with pytest.raises(ValueError, match="must be > 0"):
        pin_mmap_threshold(0)
