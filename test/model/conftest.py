"""Fixtures of the model tests: the golden parity data in ``../shared/golden`` beside the repo."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
GOLDEN_DIR = REPO_ROOT.parent / "shared" / "golden"


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """The golden directory (fails loudly when it is missing: CI has ../shared beside the clone)."""
    assert (GOLDEN_DIR / "README.md").is_file(), f"golden fixtures not found at {GOLDEN_DIR}"
    return GOLDEN_DIR


@pytest.fixture(scope="session")
def golden_fill(golden_dir: Path) -> ModuleType:
    """The golden ``fill.py`` (deterministic weight fill), imported by path."""
    spec = importlib.util.spec_from_file_location("vggt_golden_fill", golden_dir / "fill.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def official_keys(golden_dir: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{key: (shape, submodule)}`` for every row of ``vggt1b_keys.tsv``, in file order."""
    out = {}
    for row in (golden_dir / "vggt1b_keys.tsv").read_text().splitlines()[1:]:
        key, shape, _dtype, sub, _numel = row.split("\t")
        out[key] = (tuple(int(x) for x in shape.split("x")), sub)
    return out
