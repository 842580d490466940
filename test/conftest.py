"""Suite-wide test configuration: markers by location (see ``[tool:pytest]`` in setup.cfg).

* ``ros``: starts DDS participants or ROS processes (everything under ``test/ros/``, and the
  tests that name the marker themselves);
* ``golden``: compares against reference outputs of the official code (``../shared/golden*``);
* ``slow``: over ~5 s on 2 cores; ``pytest -m "not slow"`` is the quick loop.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROS_DIR = Path(__file__).resolve().parent / "ros"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if ROS_DIR in Path(item.fspath).resolve().parents:
            item.add_marker(pytest.mark.ros)
