"""The node's ``/diagnostics`` status: counters in, ``diagnostic_msgs/DiagnosticArray`` out.

:class:`InputCounters` counts what happened to incoming images (thread-safe); the node turns
them, the worker's and the tracker's counters into one ``DiagnosticStatus`` whose key/value
pairs are stable names (``images_received``, ``images_lost`` (lost in transport before the
node received them, from publisher sequence-number gaps), ``images_rejected/unsupported_encoding``, ...)
so tests and dashboards can read them back with :func:`status_values`.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Hashable, Mapping

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from vggt_uncertainty_ros.online.transport_loss import SequenceGapCounter
from vggt_uncertainty_ros.ros.conversions import ns_to_stamp

STATUS_NAME = "vggt_uncertainty_node: inference"

#: image rejection reasons (the image is not used)
REJECT_ENCODING = "unsupported_encoding"
REJECT_SIZE = "size_mismatch"
REJECT_DECODE = "decode_error"
REJECT_TOO_LARGE = "too_large"  # width x height above max_image_pixels, refused before decoding
REJECT_ASPECT = "extreme_aspect_ratio"  # one side more than MAX_ASPECT_RATIO times the other
#: largest accepted ratio of an image's sides (a 1x2000 image would be resized to 518x1036000)
MAX_ASPECT_RATIO = 10
REJECT_STAMP = "invalid_stamp"  # nanosec >= 1e9, negative sec, or far ahead of the node clock
#: image drop reasons (valid image not used, by policy)
DROP_DUPLICATE = "duplicate_stamp"
DROP_OUT_OF_ORDER = "out_of_order"  # older than the last accepted image, not (yet) a loop


class InputCounters:
    """Thread-safe counters of received, lost, rejected, dropped images and stream events."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received = 0
        self.transport = SequenceGapCounter()  # images lost before the node took them
        self.rejected: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.events: Counter[str] = Counter()

    def receive(self) -> None:
        """Count one incoming image."""
        with self._lock:
            self.received += 1

    def observe_sequence(self, publisher: Hashable | None, sequence: int | None) -> int:
        """Check a received image's publisher sequence number; return the images it reveals as
        lost in transport (negative: a late one taken back; see
        :meth:`~vggt_uncertainty_ros.online.transport_loss.SequenceGapCounter.observe`)."""
        with self._lock:
            return self.transport.observe(publisher, sequence)

    def reject(self, reason: str) -> None:
        """Count an image that could not be used (bad input)."""
        with self._lock:
            self.rejected[reason] += 1

    def drop(self, reason: str) -> None:
        """Count a valid image dropped by policy."""
        with self._lock:
            self.dropped[reason] += 1

    def event(self, name: str) -> None:
        """Count a stream event (``stamp_backwards`` reset, ``size_changed`` restart)."""
        with self._lock:
            self.events[name] += 1

    def snapshot(self) -> dict[str, float]:
        """Flat key -> value view (``images_rejected/<reason>``, ``images_dropped/<reason>``, ...)."""
        with self._lock:
            out: dict[str, float] = {
                "images_received": self.received,
                "images_lost": self.transport.lost,
                "images_unsequenced": self.transport.untracked,
                "images_rejected": sum(self.rejected.values()),
                "images_dropped": sum(self.dropped.values()),
            }
            out.update({f"images_rejected/{k}": v for k, v in self.rejected.items()})
            out.update({f"images_dropped/{k}": v for k, v in self.dropped.items()})
            out.update({f"events/{k}": v for k, v in self.events.items()})
            return out


def _fmt(value: float | str) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def build_diagnostics(
    values: Mapping[str, float | int | str], stamp_ns: int, hardware_id: str, *, level: bytes, message: str
) -> DiagnosticArray:
    """One ``DiagnosticArray`` with a single status holding ``values`` as key/value pairs.

    Args:
        values: flat counters and figures (latency in seconds, rates per second, counts).
        stamp_ns: header stamp, ns.
        hardware_id: e.g. the device the model runs on.
        level: ``DiagnosticStatus.OK``, ``WARN`` or ``ERROR`` (a one-byte ``bytes``).
        message: one-line summary.
    """
    status = DiagnosticStatus()
    status.level = level
    status.name = STATUS_NAME
    status.message = message
    status.hardware_id = hardware_id
    status.values = [KeyValue(key=k, value=_fmt(v)) for k, v in sorted(values.items())]
    array = DiagnosticArray()
    array.header.stamp = ns_to_stamp(stamp_ns)
    array.status = [status]
    return array


def status_values(array: DiagnosticArray, name: str = STATUS_NAME) -> dict[str, str]:
    """Key/value pairs of the status called ``name`` in ``array`` (empty if absent)."""
    for status in array.status:
        if status.name == name:
            return {kv.key: kv.value for kv in status.values}
    return {}
