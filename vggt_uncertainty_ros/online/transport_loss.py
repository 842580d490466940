"""Messages lost in transport, counted from the publishers' sequence numbers (ROS-free).

Every DDS writer numbers its samples 1, 2, 3, ... (``publication_sequence_number`` of a ROS 2
``MessageInfo``, per publisher GID). A subscriber that receives sequence number ``s`` from a
publisher after ``t < s - 1`` has lost the ``s - t - 1`` samples between them, wherever they
were lost: evicted from a KEEP_LAST reader history that the executor did not empty fast
enough (the common case for large images on a reliable, depth-10 subscription), evicted from
the writer's history before they were acknowledged, or dropped on the wire (best effort).
Fast DDS's ``message_lost`` event does not report reader-history evictions (measured: 0 of 173
lost in a burst over reliable KEEP_LAST 10, and 156 of 173 for best effort), so the sequence
numbers are the definitive count.

Not counted: samples a publisher sent before the first one this subscriber received from it
(it may have started before the subscriber matched it: those were never on their way here),
and the samples after the last one received (nothing received afterwards reveals them; on a
reliable subscription the newest samples are the ones kept).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

#: publishers remembered at once (least recently heard from forgotten first)
DEFAULT_MAX_PUBLISHERS = 64


class SequenceGapCounter:
    """Counts samples lost between publishers and one subscriber from sequence-number gaps.

    Args:
        max_publishers: publishers whose last sequence number is remembered (LRU); a forgotten
            publisher heard from again starts a new baseline (its gap meanwhile is not counted).

    Not thread-safe: call :meth:`observe` from one thread (the subscription's callback).
    """

    def __init__(self, max_publishers: int = DEFAULT_MAX_PUBLISHERS) -> None:
        if max_publishers < 1:
            raise ValueError(f"max_publishers must be >= 1, got {max_publishers}")
        self._last: OrderedDict[Hashable, int] = OrderedDict()
        self._max = max_publishers
        #: samples lost in transport so far (sequence-number gaps, minus late arrivals)
        self.lost = 0
        #: samples that arrived without a sequence number or publisher id (cannot be checked)
        self.untracked = 0
        #: samples older than the last one from their publisher (late: already counted lost)
        self.late = 0

    @property
    def publishers(self) -> int:
        """Publishers currently remembered."""
        return len(self._last)

    def observe(self, publisher: Hashable | None, sequence: int | None) -> int:
        """Record a received sample; return how many samples this one reveals as lost.

        Args:
            publisher: the publisher's identity (its GID), or None if unknown.
            sequence: its ``publication_sequence_number`` (1, 2, ... per publisher), or None or
                a value <= 0 if the middleware did not provide one.

        Returns:
            The samples newly counted as lost (0 for the first sample of a publisher, a
            consecutive one, or an untracked one). A sample older than the last one received
            from its publisher was counted lost when the gap opened; DDS delivers a sample at
            most once, so it is taken back (returns -1).
        """
        if publisher is None or sequence is None or sequence <= 0:
            self.untracked += 1
            return 0
        last = self._last.get(publisher)
        if last is None:
            self._last[publisher] = sequence
            if len(self._last) > self._max:
                self._last.popitem(last=False)
            return 0
        self._last.move_to_end(publisher)
        if sequence > last:
            self._last[publisher] = sequence
            gap = sequence - last - 1
            self.lost += gap
            return gap
        if sequence < last and self.lost > 0:
            self.late += 1
            self.lost -= 1
            return -1
        return 0  # the same sequence number again: a duplicate, nothing lost
