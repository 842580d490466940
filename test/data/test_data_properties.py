"""Property-based tests (hypothesis): image codec round trip, window-builder invariants."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vggt_uncertainty_ros.data.image_codec import decode_image, encode_image
from vggt_uncertainty_ros.data.windows import WindowBuilder, WindowConfig

#: encoding -> (channels, dtype) as the codec documents them
ENCODINGS = {
    "rgb8": (3, np.uint8),
    "bgra8": (4, np.uint8),
    "mono8": (1, np.uint8),
    "mono16": (1, np.uint16),
    "32FC1": (1, np.float32),
}


@st.composite
def images(draw):
    encoding = draw(st.sampled_from(sorted(ENCODINGS)))
    channels, dtype = ENCODINGS[encoding]
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    shape = (h, w) if channels == 1 else (h, w, channels)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype is np.float32:
        array = rng.standard_normal(shape).astype(np.float32)
    else:
        array = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    return encoding, array


@settings(max_examples=150, deadline=None)
@given(images(), st.booleans(), st.integers(0, 7))
def test_encode_decode_round_trip_with_any_padding_and_byte_order(image, big_endian, padding):
    encoding, array = image
    row = array.shape[1] * array.itemsize * (array.shape[2] if array.ndim == 3 else 1)
    step, data = encode_image(array, encoding, is_bigendian=big_endian, step=row + padding)
    assert step == row + padding and len(data) == array.shape[0] * step
    decoded = decode_image(encoding, array.shape[0], array.shape[1], step, big_endian, data)
    assert decoded.dtype == array.dtype and decoded.shape == array.shape
    np.testing.assert_array_equal(decoded, array)


@st.composite
def window_streams(draw):
    size = draw(st.integers(2, 8))
    cfg = WindowConfig(
        size=size,
        stride=draw(st.integers(1, size - 1)),
        keyframe_every=draw(st.integers(1, 3)),
        min_keyframe_gap_s=draw(st.sampled_from([0.0, 0.05])),
    )
    gaps_ms = draw(st.lists(st.integers(1, 80), min_size=0, max_size=120))
    return cfg, np.cumsum([1_000, *gaps_ms]) * 1_000_000


@settings(max_examples=150, deadline=None)
@given(window_streams())
def test_windows_have_size_frames_increasing_stamps_and_overlap_by_size_minus_stride(stream):
    cfg, stamps = stream
    builder: WindowBuilder[int] = WindowBuilder(cfg)
    windows = [w for i, s in enumerate(stamps) if (w := builder.push(i, int(s))) is not None]
    for k, window in enumerate(windows):
        assert window.index == k and len(window) == cfg.size
        assert np.all(np.diff(window.stamps_ns) > 0)
        np.testing.assert_array_equal(window.stamps_ns, stamps[list(window.items)])
        np.testing.assert_array_equal(window.push_indices, list(window.items))
        assert all(i % cfg.keyframe_every == 0 for i in window.items)
        assert np.all(np.diff(window.stamps_ns) >= round(cfg.min_keyframe_gap_s * 1e9))
    for prev, nxt in zip(windows, windows[1:]):
        assert prev.items[cfg.stride :] == nxt.items[: cfg.size - cfg.stride]
    assert builder.warnings.as_dict() == {}  # increasing stamps: nothing to warn about
