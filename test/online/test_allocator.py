"""The node's host-memory policy: glibc's mmap threshold is pinned.

``mallopt`` changes the whole process's allocator, so the call under test runs in a child
interpreter and the test process keeps its own settings.
"""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from vggt_uncertainty_ros.online.allocator import pin_mmap_threshold


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_pin_mmap_threshold_applies_on_glibc():
    code = (
        "from vggt_uncertainty_ros.online.allocator import pin_mmap_threshold; "
        "import sys; sys.exit(0 if pin_mmap_threshold(1 << 20) is True else 3)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_pin_mmap_threshold_rejects_a_non_positive_threshold():
    with pytest.raises(ValueError, match="must be > 0"):
        pin_mmap_threshold(0)
