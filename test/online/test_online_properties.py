"""Property-based tests (hypothesis): the anchor frame-id convention and the latest-wins queue."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vggt_uncertainty_ros.errors import DataError
from vggt_uncertainty_ros.online.measurements import format_anchor_frame_id, parse_anchor_frame_id
from vggt_uncertainty_ros.online.worker import LatestWinsQueue

frame_ids = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), min_size=1, max_size=30)
stamps = st.integers(0, 2**63 - 1)


@settings(max_examples=300, deadline=None)
@given(frame_ids, stamps)
def test_anchor_frame_id_round_trips_any_frame_and_stamp(frame, stamp_ns):
    assert parse_anchor_frame_id(format_anchor_frame_id(frame, stamp_ns)) == (frame, stamp_ns)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=30).filter(lambda s: "@" not in s))
def test_a_plain_frame_id_is_not_an_anchor(frame):
    with pytest.raises(DataError):
        parse_anchor_frame_id(frame)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5), st.lists(st.booleans(), max_size=60))
def test_latest_wins_queue_keeps_order_bound_and_accounts_for_every_item(maxsize, ops):
    """``True`` puts the next item, ``False`` takes one (non-blocking)."""
    queue: LatestWinsQueue[int] = LatestWinsQueue(maxsize)
    put, taken, evicted = 0, [], []
    for is_put in ops:
        if is_put:
            old = queue.put(put)
            put += 1
            if old is not None:
                evicted.append(old)
        elif len(queue):
            taken.append(queue.get(timeout_s=0))
        assert len(queue) <= maxsize
    rest = [queue.get(timeout_s=0) for _ in range(len(queue))]
    assert sorted(taken + evicted + rest) == list(range(put))  # nothing lost, nothing twice
    assert taken + rest == sorted(taken + rest)  # FIFO among delivered items
    assert evicted == sorted(evicted) and all(e < min(rest, default=put) for e in evicted)  # the oldest go first
