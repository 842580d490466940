"""``sensor_msgs/Image`` <-> numpy, step- and endianness-aware, numpy only.

The project's own conversion (the PyPI ``cv-bridge`` is the ROS 1 build and mis-decodes with
NumPy 2). Supported encodings and the arrays they map to:

=========  ============  =========  ====================================
encoding   array shape   dtype      channel order
=========  ============  =========  ====================================
rgb8       [H, W, 3]     uint8      R, G, B
bgr8       [H, W, 3]     uint8      B, G, R
rgba8      [H, W, 4]     uint8      R, G, B, A
bgra8      [H, W, 4]     uint8      B, G, R, A
mono8      [H, W]        uint8      (``8UC1`` is accepted as an alias)
mono16     [H, W]        uint16     (``16UC1`` alias), native byte order
32FC1      [H, W]        float32    native byte order (depth in metres by convention)
=========  ============  =========  ====================================

:func:`decode_image` returns the stored layout (so ``encode_image(decode_image(...))`` is the
identity); :func:`to_rgb8` / :func:`decode_image_rgb8` give the ``[H, W, 3]`` RGB uint8 array
that the model and :class:`~vggt_uncertainty_ros.data.types.Frame` use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vggt_uncertainty_ros.errors import ImageEncodingError

__all__ = [
    "SUPPORTED_ENCODINGS",
    "decode_image",
    "decode_image_rgb8",
    "encode_image",
    "to_rgb8",
]


@dataclass(frozen=True)
class _Layout:
    channels: int
    dtype: np.dtype


_LAYOUTS: dict[str, _Layout] = {
    "rgb8": _Layout(3, np.dtype(np.uint8)),
    "bgr8": _Layout(3, np.dtype(np.uint8)),
    "rgba8": _Layout(4, np.dtype(np.uint8)),
    "bgra8": _Layout(4, np.dtype(np.uint8)),
    "mono8": _Layout(1, np.dtype(np.uint8)),
    "mono16": _Layout(1, np.dtype(np.uint16)),
    "32FC1": _Layout(1, np.dtype(np.float32)),
}
_ALIASES = {"8UC1": "mono8", "16UC1": "mono16"}

#: Encodings accepted by :func:`decode_image` and :func:`encode_image`.
SUPPORTED_ENCODINGS: tuple[str, ...] = (*_LAYOUTS, *_ALIASES)


def _layout(encoding: str) -> tuple[str, _Layout]:
    canonical = _ALIASES.get(encoding, encoding)
    try:
        return canonical, _LAYOUTS[canonical]
    except KeyError:
        raise ImageEncodingError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        ) from None


def decode_image(
    encoding: str,
    height: int,
    width: int,
    step: int,
    is_bigendian: bool | int,
    data: bytes | bytearray | memoryview | np.ndarray,
) -> np.ndarray:
    """Decode the fields of a ``sensor_msgs/Image`` into an array in the stored layout.

    Row padding (``step`` larger than ``width * pixel_size``) is skipped; multi-byte pixels
    are converted to native byte order when ``is_bigendian`` differs from the host. The result
    may be a read-only view sharing memory with ``data`` when no conversion is needed.

    Args:
        encoding: ``sensor_msgs/Image.encoding`` (see the module table).
        height: Rows.
        width: Columns.
        step: Bytes per row, including padding.
        is_bigendian: Byte order of multi-byte pixels in ``data``.
        data: ``height * step`` bytes.

    Returns:
        ``[H, W]`` (mono, 32FC1) or ``[H, W, C]`` array in the encoding's channel order.

    Raises:
        ImageEncodingError: Unsupported encoding, non-positive size, ``step`` shorter than a
            row, or ``len(data) != height * step``.
    """
    canonical, layout = _layout(encoding)
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0:
        raise ImageEncodingError(f"{canonical} image has invalid size {width}x{height}")
    pixel_bytes = layout.channels * layout.dtype.itemsize
    row_bytes = width * pixel_bytes
    if step < row_bytes:
        raise ImageEncodingError(
            f"{canonical} image {width}x{height}: step {step} is shorter than a row "
            f"({width} px x {pixel_bytes} B = {row_bytes} B)"
        )
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    buf = buf.reshape(-1).view(np.uint8)
    if buf.size != height * step:
        raise ImageEncodingError(
            f"{canonical} image {width}x{height}: data has {buf.size} bytes, expected "
            f"height x step = {height} x {step} = {height * step}"
        )
    big = bool(is_bigendian)
    dtype = layout.dtype.newbyteorder(">" if big else "<") if layout.dtype.itemsize > 1 else layout.dtype
    shape: tuple[int, ...] = (height, width) if layout.channels == 1 else (height, width, layout.channels)
    strides: tuple[int, ...] = (
        (step, pixel_bytes) if layout.channels == 1 else (step, pixel_bytes, layout.dtype.itemsize)
    )
    if step == row_bytes and buf.flags.c_contiguous and layout.dtype.itemsize == 1:
        out = buf.reshape(shape)
    else:
        out = np.ndarray(shape, dtype=dtype, buffer=buf, strides=strides)
    if out.dtype != layout.dtype or not out.flags.c_contiguous:
        # byte swap (if any) and drop row padding in one copy
        out = np.ascontiguousarray(out, dtype=layout.dtype)
    return out


def encode_image(
    array: np.ndarray, encoding: str, *, is_bigendian: bool = False, step: int | None = None
) -> tuple[int, bytes]:
    """Encode an array in ``encoding``'s stored layout as ``sensor_msgs/Image`` data.

    Args:
        array: ``[H, W]`` or ``[H, W, C]`` array whose dtype and channel count match
            ``encoding`` (see the module table); channel order is taken as given.
        encoding: Target encoding.
        is_bigendian: Write multi-byte pixels big-endian (set the message's ``is_bigendian``
            to the same value).
        step: Bytes per row; larger than the row size pads each row with zeros. Defaults
            to the unpadded row size.

    Returns:
        ``(step, data)``, ``len(data) == height * step``.

    Raises:
        ImageEncodingError: Unsupported encoding, or shape/dtype/step not matching it.
    """
    canonical, layout = _layout(encoding)
    arr = np.asarray(array)
    expected_ndim = 2 if layout.channels == 1 else 3
    if layout.channels == 1 and arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim != expected_ndim or (expected_ndim == 3 and arr.shape[2] != layout.channels):
        raise ImageEncodingError(
            f"cannot encode array of shape {arr.shape} as {canonical}: expected "
            f"{'[H, W]' if expected_ndim == 2 else f'[H, W, {layout.channels}]'}"
        )
    if arr.dtype != layout.dtype:
        raise ImageEncodingError(f"cannot encode {arr.dtype} array as {canonical}: expected {layout.dtype}")
    height, width = arr.shape[:2]
    if height == 0 or width == 0:
        raise ImageEncodingError(f"cannot encode empty image of shape {arr.shape}")
    row_bytes = width * layout.channels * layout.dtype.itemsize
    step = row_bytes if step is None else int(step)
    if step < row_bytes:
        raise ImageEncodingError(f"step {step} is shorter than a {canonical} row of {row_bytes} B")
    target = layout.dtype.newbyteorder(">" if is_bigendian else "<")
    rows = np.ascontiguousarray(arr, dtype=target).reshape(height, row_bytes // target.itemsize)
    if step == row_bytes:
        return step, rows.tobytes()
    padded = np.zeros((height, step), dtype=np.uint8)
    padded[:, :row_bytes] = rows.view(np.uint8)
    return step, padded.tobytes()


def to_rgb8(array: np.ndarray, encoding: str) -> np.ndarray:
    """Convert a decoded image to ``[H, W, 3]`` uint8 RGB.

    Colour encodings are reordered / stripped of alpha; ``mono8`` is replicated to three
    channels; ``mono16`` keeps its high byte. ``32FC1`` is not an image and is refused.

    Raises:
        ImageEncodingError: ``32FC1`` or an unsupported encoding.
    """
    canonical, _ = _layout(encoding)
    if canonical == "rgb8":
        return array
    if canonical == "bgr8":
        return np.ascontiguousarray(array[..., ::-1])
    if canonical == "rgba8":
        return np.ascontiguousarray(array[..., :3])
    if canonical == "bgra8":
        return np.ascontiguousarray(array[..., 2::-1])
    if canonical == "mono8":
        return np.repeat(array[..., None], 3, axis=2)
    if canonical == "mono16":
        return np.repeat((array >> 8).astype(np.uint8)[..., None], 3, axis=2)
    raise ImageEncodingError(f"{canonical} is not a colour or grey image; cannot convert to rgb8")


def decode_image_rgb8(
    encoding: str,
    height: int,
    width: int,
    step: int,
    is_bigendian: bool | int,
    data: bytes | bytearray | memoryview | np.ndarray,
) -> np.ndarray:
    """:func:`decode_image` followed by :func:`to_rgb8`; same arguments and errors."""
    return to_rgb8(decode_image(encoding, height, width, step, is_bigendian, data), encoding)
