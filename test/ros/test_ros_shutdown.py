"""ShutdownGuard: what SIGINT/SIGTERM do in each phase of the node process (no ROS needed)."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from vggt_uncertainty_ros.ros.shutdown import Phase, ShutdownGuard


class ExitRecorder:
    def __init__(self) -> None:
        self.codes: list[int] = []
        self.called = threading.Event()

    def __call__(self, code: int) -> None:
        self.codes.append(code)
        self.called.set()


@pytest.fixture
def restore_handlers():
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_a_signal_during_start_up_exits_zero_once(restore_handlers):
    exits = ExitRecorder()
    guard = ShutdownGuard(exit_fn=exits)
    guard.install()
    assert guard.phase is Phase.STARTING
    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGINT)
    assert exits.codes == [0] and guard.requested and guard.signals_received == 2


def test_signals_while_running_only_request_a_stop_and_repeats_are_ignored(restore_handlers):
    exits = ExitRecorder()
    guard = ShutdownGuard(grace_s=60.0, exit_fn=exits)
    guard.install()
    guard.running()
    for sig in (signal.SIGINT, signal.SIGINT, signal.SIGTERM, signal.SIGINT):  # no KeyboardInterrupt
        os.kill(os.getpid(), sig)
    assert guard.requested and guard.signals_received == 4
    guard.stopping()
    guard.cancel()
    assert exits.codes == []


def test_the_watchdog_exits_zero_when_clean_up_hangs():
    exits = ExitRecorder()
    guard = ShutdownGuard(grace_s=0.01, exit_fn=exits)
    guard.running()
    guard.request("by test")
    assert exits.called.wait(10.0)
    assert exits.codes == [0]
