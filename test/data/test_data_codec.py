"""sensor_msgs/Image codec: every encoding, step padding, endianness, error cases."""

from __future__ import annotations

import numpy as np
import pytest

from vggt_uncertainty_ros.data.image_codec import (
    SUPPORTED_ENCODINGS,
    decode_image,
    decode_image_rgb8,
    encode_image,
    to_rgb8,
)
from vggt_uncertainty_ros.errors import ImageEncodingError

H, W = 5, 7


def _sample(encoding: str, rng: np.random.Generator) -> np.ndarray:
    if encoding in ("rgb8", "bgr8"):
        return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    if encoding in ("rgba8", "bgra8"):
        return rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
    if encoding in ("mono8", "8UC1"):
        return rng.integers(0, 256, (H, W), dtype=np.uint8)
    if encoding in ("mono16", "16UC1"):
        return rng.integers(0, 65536, (H, W), dtype=np.uint16)
    return rng.normal(size=(H, W)).astype(np.float32)


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize("big", [False, True])
def test_round_trip_every_encoding(encoding: str, pad: int, big: bool) -> None:
    arr = _sample(encoding, np.random.default_rng(1))
    row = arr.strides[0]
    step, data = encode_image(arr, encoding, is_bigendian=big, step=row + pad)
    assert step == row + pad and len(data) == H * step
    out = decode_image(encoding, H, W, step, big, data)
    assert out.dtype == arr.dtype.newbyteorder("=") and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)


def test_padding_bytes_are_ignored() -> None:
    arr = np.arange(H * W * 3, dtype=np.uint8).reshape(H, W, 3)
    step = W * 3 + 5
    buf = np.full((H, step), 0xAB, np.uint8)
    buf[:, : W * 3] = arr.reshape(H, -1)
    np.testing.assert_array_equal(decode_image("rgb8", H, W, step, 0, buf.tobytes()), arr)


def test_big_endian_mono16_from_raw_bytes() -> None:
    # 0x0102 stored big-endian is b"\x01\x02"; little-endian would read it as 0x0201
    data = bytes([0x01, 0x02]) * (H * W)
    out = decode_image("mono16", H, W, 2 * W, True, data)
    assert out.dtype == np.dtype(np.uint16) and np.all(out == 0x0102)
    assert np.all(decode_image("mono16", H, W, 2 * W, False, data) == 0x0201)


def test_big_endian_float_from_struct_bytes() -> None:
    import struct

    data = struct.pack(">" + "f" * (H * W), *np.linspace(0.5, 3.0, H * W))
    out = decode_image("32FC1", H, W, 4 * W, 1, data)
    np.testing.assert_allclose(out.ravel(), np.linspace(0.5, 3.0, H * W).astype(np.float32))


def test_to_rgb8_channel_orders() -> None:
    rgb = np.random.default_rng(2).integers(0, 256, (H, W, 3), dtype=np.uint8)
    bgr = rgb[..., ::-1].copy()
    rgba = np.concatenate([rgb, np.full((H, W, 1), 9, np.uint8)], axis=2)
    bgra = np.concatenate([bgr, np.full((H, W, 1), 9, np.uint8)], axis=2)
    for enc, arr in (("rgb8", rgb), ("bgr8", bgr), ("rgba8", rgba), ("bgra8", bgra)):
        step, data = encode_image(arr, enc)
        np.testing.assert_array_equal(decode_image_rgb8(enc, H, W, step, 0, data), rgb)
    mono = rgb[..., 0]
    np.testing.assert_array_equal(to_rgb8(mono, "mono8"), np.stack([mono] * 3, axis=2))
    mono16 = mono.astype(np.uint16) << 8
    np.testing.assert_array_equal(to_rgb8(mono16, "mono16"), np.stack([mono] * 3, axis=2))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("yuv422", H, W, 2 * W, 0, bytes(2 * W * H)), "unsupported image encoding 'yuv422'"),
        (("rgb8", H, W, 3 * W - 1, 0, bytes((3 * W - 1) * H)), "step 20 is shorter than a row"),
        (("rgb8", H, W, 3 * W, 0, bytes(3 * W * H - 1)), "expected height x step = 5 x 21 = 105"),
        (("mono16", H, W, 2 * W, 0, bytes(2 * W * H + 2)), "data has 72 bytes"),
        (("mono8", 0, W, W, 0, b""), "invalid size"),
    ],
)
def test_decode_errors(args: tuple, match: str) -> None:
    with pytest.raises(ImageEncodingError, match=match):
        decode_image(*args)


def test_encode_errors() -> None:
    with pytest.raises(ImageEncodingError, match="expected uint8"):
        encode_image(np.zeros((H, W, 3), np.float32), "rgb8")
    with pytest.raises(ImageEncodingError, match=r"expected \[H, W, 4\]"):
        encode_image(np.zeros((H, W, 3), np.uint8), "rgba8")
    with pytest.raises(ImageEncodingError, match="shorter than"):
        encode_image(np.zeros((H, W), np.uint16), "mono16", step=W)
    with pytest.raises(ImageEncodingError, match="not a colour or grey image"):
        to_rgb8(np.zeros((H, W), np.float32), "32FC1")
