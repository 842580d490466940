"""``vggt-uncertainty``: one entry point, one module per subcommand.

Each subcommand lives in ``vggt_uncertainty_ros/cli/<module>.py`` and exposes

* ``HELP: str`` -- one line for ``--help``;
* ``add_arguments(parser: argparse.ArgumentParser) -> None``;
* ``run(args: argparse.Namespace) -> int`` -- the exit status.

Modules are imported only when their subcommand runs, so ``vggt-uncertainty synth``
does not pay for importing torch. Expected errors (deriving from
:class:`~vggt_uncertainty_ros.errors.VggtUncertaintyError`, and ``OSError`` for files that
cannot be read or written) become one log line and exit 1; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from vggt_uncertainty_ros.errors import VggtUncertaintyError

#: subcommand name -> module under vggt_uncertainty_ros.cli
SUBCOMMANDS: dict[str, str] = {
    "synth": "synth",
    "train": "train",
    "calibrate": "calibrate",
    "cache": "cache",
    "charts": "charts",
    "bench": "bench",
    "bench-calibration": "bench_calibration",
    "bench-unseen": "bench_unseen",
    "eval": "eval",
    "eval-many": "eval_many",
    "fetch-tum": "fetch_tum",
    "demo": "demo",
}

_log = logging.getLogger("vggt_uncertainty_ros")


def _load(name: str):
    return importlib.import_module(f"vggt_uncertainty_ros.cli.{SUBCOMMANDS[name]}")


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``selected``, only that subcommand's module is imported.

    Without it (``--help``, or no subcommand given), every module is imported for its help line.
    """
    parser = argparse.ArgumentParser(
        prog="vggt-uncertainty",
        description="Calibrated 6-DOF pose uncertainty with VGGT: synthetic data, training, evaluation, "
        "benchmarks and the end-to-end demo. The ROS 2 node is `vggt_uncertainty_node`.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (implies --verbose)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        if selected in (None, name):
            module = _load(name)
            module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.HELP))
        else:  # present so that the name parses; its module stays unimported
            sub.add_parser(name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = next((a for a in argv if a in SUBCOMMANDS), None)
    args = build_parser(selected).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose or args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(_load(args.command).run(args) or 0)
    except (VggtUncertaintyError, OSError) as err:
        _log.error("%s: %s", type(err).__name__, err, exc_info=err if args.debug else None)
        return 1
    except KeyboardInterrupt:
        _log.error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
