"""Access to the repository's top-level ``benchmarks/`` package from the CLI.

Benchmarks and GPU probes are not part of the installed package (they are measurement
tools, not product code). The ``bench*`` subcommands import them from the source checkout
the package was installed from (``pip install -e .``, the Makefile's install); an install
without the checkout gets a clear error instead of an ImportError.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

from vggt_uncertainty_ros.errors import ConfigError

#: The source checkout: the directory holding both ``vggt_uncertainty_ros/`` and ``benchmarks/``.
CHECKOUT = Path(__file__).resolve().parents[2]


def import_benchmark(name: str) -> ModuleType:
    """Import ``benchmarks.<name>`` from the source checkout.

    Raises:
        ConfigError: The package was installed without its source checkout.
    """
    if not (CHECKOUT / "benchmarks" / "__init__.py").is_file():
        raise ConfigError(f"benchmarks are run from a source checkout (pip install -e .); none found at {CHECKOUT}")
    if str(CHECKOUT) not in sys.path:
        sys.path.insert(0, str(CHECKOUT))
    return importlib.import_module(f"benchmarks.{name}")
