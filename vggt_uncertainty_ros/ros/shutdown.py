"""Clean process shutdown on SIGINT/SIGTERM, from the first line of ``main`` to the last.

:class:`ShutdownGuard` is installed before any heavy import (rclpy, torch, the model), so a
signal at any moment ends the process with exit status 0 and no traceback:

* during start-up (imports, ``rclpy.init``, model loading, ``torch.compile``) there is nothing
  to clean up: the process logs one line and exits 0 at once;
* while running, the first signal only sets :attr:`ShutdownGuard.requested`; the main loop
  notices it within its spin timeout and stops the worker, the node and rclpy in order. A
  watchdog exits 0 anyway after ``grace_s`` if that clean-up hangs (a long inference);
* any further signal (a terminal's Ctrl-C reaches the whole process group, and ``ros2 launch``
  forwards SIGINT and later sends SIGTERM) is ignored: the handler is idempotent.

No ``KeyboardInterrupt`` is ever raised, so no ``finally`` block is cut short. rclpy must be
initialised with ``SignalHandlerOptions.NO`` so that it leaves these handlers in place.
Stdlib only (no rclpy import), so it is safe to import first.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

_log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Phase(str, enum.Enum):
    """Where the process is; decides what a signal does."""

    STARTING = "starting"  #: imports, rclpy.init, model loading: exit 0 immediately
    RUNNING = "running"  #: spinning: request a clean stop, the main loop does it
    STOPPING = "stopping"  #: cleaning up: further signals are ignored


def _hard_exit(code: int) -> None:
    """Flush what was logged, then leave without running (possibly blocking) finalisers."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed or broken pipe: nothing more to say
            stream.flush()
    os._exit(code)


class ShutdownGuard:
    """SIGINT/SIGTERM handling for the node process (see the module docstring).

    Args:
        grace_s: longest clean-up after a signal while running before the watchdog exits 0.
        exit_fn: how the process ends early (tests inject a recorder); ``os._exit`` after a flush.
    """

    def __init__(self, grace_s: float = 4.0, exit_fn: Callable[[int], None] = _hard_exit) -> None:
        self.grace_s = grace_s
        self._exit = exit_fn
        self._phase = Phase.STARTING
        self._requested = threading.Event()
        self._watchdog: threading.Timer | None = None
        self.signals_received = 0

    @property
    def requested(self) -> bool:
        """True once a shutdown signal arrived (or :meth:`request` was called)."""
        return self._requested.is_set()

    @property
    def phase(self) -> Phase:
        return self._phase

    def install(self) -> None:
        """Install the handler for SIGINT and SIGTERM (call from the main thread)."""
        for sig in SIGNALS:
            signal.signal(sig, self._on_signal)

    def running(self) -> None:
        """Start-up is over: from now on a signal requests a clean stop."""
        self._phase = Phase.RUNNING

    def stopping(self) -> None:
        """Clean-up has begun (after a signal or any other end of the main loop)."""
        self._phase = Phase.STOPPING
        self._start_watchdog()

    def request(self, reason: str = "requested") -> None:
        """Ask for a shutdown as a signal would (idempotent)."""
        if self._requested.is_set():
            return
        self._requested.set()
        if self._phase is Phase.STARTING:
            _log.info("shutdown %s during start-up: exiting", reason)
            self._exit(0)
            return
        _log.info("shutdown %s: stopping", reason)
        self._start_watchdog()

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signals_received += 1
        self.request(f"by {signal.Signals(signum).name}")

    def _start_watchdog(self) -> None:
        if self._watchdog is not None:
            return
        self._watchdog = threading.Timer(self.grace_s, self._expire)
        self._watchdog.daemon = True
        self._watchdog.start()

    def _expire(self) -> None:
        _log.warning("clean-up still running after %.1f s: exiting now", self.grace_s)
        self._exit(0)

    def cancel(self) -> None:
        """Stop the watchdog (clean-up finished in time)."""
        if self._watchdog is not None:
            self._watchdog.cancel()
