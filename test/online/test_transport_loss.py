"""Transport-loss counting from per-publisher sequence numbers (ROS-free)."""

from __future__ import annotations

import pytest

from vggt_uncertainty_ros.online.transport_loss import SequenceGapCounter


def test_consecutive_samples_lose_nothing_and_gaps_count_the_missing_ones():
    c = SequenceGapCounter()
    assert [c.observe(b"a", s) for s in (1, 2, 3)] == [0, 0, 0]
    assert c.observe(b"a", 7) == 3  # 4, 5, 6 lost
    assert c.observe(b"a", 8) == 0
    assert c.observe(b"a", 10) == 1
    assert c.lost == 4 and c.untracked == 0


def test_the_first_sample_of_a_publisher_is_a_baseline_not_a_loss():
    c = SequenceGapCounter()
    assert c.observe(b"late-joiner", 500) == 0  # published before this subscriber matched it
    assert c.observe(b"late-joiner", 501) == 0
    assert c.lost == 0


def test_publishers_are_counted_separately():
    c = SequenceGapCounter()
    for pub, seq in [(b"a", 1), (b"b", 1), (b"a", 2), (b"b", 4), (b"a", 3), (b"b", 5), (b"a", 6)]:
        c.observe(pub, seq)
    assert c.lost == 2 + 2  # b: 2, 3; a: 4, 5
    assert c.publishers == 2


def test_a_late_sample_takes_back_one_counted_loss_and_a_duplicate_changes_nothing():
    c = SequenceGapCounter()
    c.observe(b"a", 1)
    c.observe(b"a", 4)
    assert c.lost == 2
    assert c.observe(b"a", 2) == -1  # arrived after all
    assert c.lost == 1 and c.late == 1
    assert c.observe(b"a", 4) == 0  # same number again
    assert c.observe(b"a", 5) == 0  # the baseline stayed at the newest sample
    assert c.lost == 1


def test_samples_without_publisher_or_sequence_are_untracked():
    c = SequenceGapCounter()
    assert c.observe(None, 5) == 0
    assert c.observe(b"a", None) == 0
    assert c.observe(b"a", 0) == 0  # rmw's "unsupported" value
    assert c.untracked == 3 and c.lost == 0 and c.publishers == 0


def test_publishers_beyond_the_limit_are_forgotten_least_recent_first():
    c = SequenceGapCounter(max_publishers=2)
    c.observe(b"a", 1)
    c.observe(b"b", 1)
    c.observe(b"a", 2)  # a is now the most recent
    c.observe(b"c", 1)  # evicts b
    assert c.publishers == 2
    assert c.observe(b"a", 4) == 1  # a was kept: its gap is counted
    assert c.observe(b"b", 9) == 0  # b was forgotten: a new baseline (evicts c, now the least recent)
    assert c.observe(b"b", 11) == 1
    assert c.observe(b"c", 5) == 0  # c was forgotten in turn
    assert c.lost == 2


def test_max_publishers_must_be_positive():
    with pytest.raises(ValueError, match="max_publishers"):
        SequenceGapCounter(max_publishers=0)
