"""TUM RGB-D text files: ``rgb.txt`` / ``depth.txt`` lists, ``groundtruth.txt`` trajectories,
and TUM's stamp association rule.

Stamps are parsed from their decimal text exactly into integer nanoseconds (no float round
trip), so ``1305031102.175304`` is ``1305031102175304000`` ns.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path

import numpy as np

from vggt_uncertainty_ros.errors import DataError, MalformedLineError
from vggt_uncertainty_ros.geometry import quat_to_rotmat, rotmat_to_quat

__all__ = [
    "associate",
    "format_stamp",
    "parse_stamp",
    "read_tum_list",
    "read_tum_trajectory",
    "write_tum_list",
    "write_tum_trajectory",
]

_log = logging.getLogger(__name__)

_NS = 1_000_000_000


def parse_stamp(text: str) -> int:
    """Parse a decimal seconds string (``"1305031102.175304"``) into integer nanoseconds.

    Raises:
        ValueError: ``text`` is not a finite decimal number.
    """
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a number: {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"not a finite stamp: {text!r}")
    return int(value.scaleb(9).to_integral_value(ROUND_HALF_EVEN))


def format_stamp(stamp_ns: int, min_decimals: int = 6) -> str:
    """Seconds with at least ``min_decimals`` decimals and as many more as needed to be exact."""
    stamp_ns = int(stamp_ns)
    sign = "-" if stamp_ns < 0 else ""
    sec, frac = divmod(abs(stamp_ns), _NS)
    digits = f"{frac:09d}".rstrip("0")
    digits = digits.ljust(min_decimals, "0")
    return f"{sign}{sec}.{digits}" if digits else f"{sign}{sec}"


def _data_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, fields)`` of non-blank, non-comment lines."""
    try:
        with path.open("r", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                stripped = line.strip()
                if not stripped or stripped.startswith("#"):
                    continue
                yield lineno, stripped.replace(",", " ").split()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err}") from err
    except UnicodeDecodeError as err:
        raise MalformedLineError(f"{path}: not a UTF-8 text file ({err})") from err


def read_tum_list(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Read a TUM image list (``rgb.txt``, ``depth.txt``): ``timestamp filename`` per line.

    Args:
        path: The list file; comment lines start with ``#``.

    Returns:
        ``(stamps_ns[N] int64, filenames[N])`` in file order (relative to the list's folder).

    Raises:
        MalformedLineError: A line without exactly two fields or with a bad stamp (names
            file and line).
    """
    path = Path(path)
    stamps: list[int] = []
    names: list[str] = []
    for lineno, fields in _data_lines(path):
        if len(fields) != 2:
            raise MalformedLineError(
                f"{path}:{lineno}: expected 2 fields 'timestamp filename', got {len(fields)}: {' '.join(fields)!r}"
            )
        try:
            stamps.append(parse_stamp(fields[0]))
        except ValueError as err:
            raise MalformedLineError(f"{path}:{lineno}: bad timestamp: {err}") from None
        names.append(fields[1])
    return np.asarray(stamps, dtype=np.int64), names


def write_tum_list(
    path: str | Path,
    stamps_ns: Sequence[int] | np.ndarray,
    filenames: Sequence[str],
    *,
    title: str = "images",
) -> None:
    """Write a TUM image list with TUM's three comment lines.

    Args:
        path: Output file.
        stamps_ns: ``[N]`` stamps, nanoseconds.
        filenames: ``[N]`` paths relative to the list's folder (e.g. ``rgb/<stamp>.png``).
        title: First comment line (TUM uses ``color images`` / ``depth maps``).
    """
    if len(stamps_ns) != len(filenames):
        raise DataError(f"{path}: {len(stamps_ns)} stamps but {len(filenames)} file names")
    lines = [f"# {title}", f"# file: '{Path(path).parent.name}'", "# timestamp filename"]
    lines += [f"{format_stamp(s)} {n}" for s, n in zip(np.asarray(stamps_ns).tolist(), filenames)]
    Path(path).write_text("\n".join(lines) + "\n")


def read_tum_trajectory(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a TUM trajectory: ``timestamp tx ty tz qx qy qz qw`` per line.

    Rows are ``T_world_cam``: the pose of the camera's optical frame in the world frame,
    translation in metres, quaternion XYZW (normalised on read).

    Args:
        path: ``groundtruth.txt`` or an estimate in the same format; ``#`` starts a comment.

    Returns:
        ``(stamps_ns[N] int64, T_world_cam[N, 4, 4] float64)`` in file order.

    Raises:
        MalformedLineError: Wrong field count, a non-number, or a zero quaternion (names file
            and line).
    """
    path = Path(path)
    stamps: list[int] = []
    rows: list[list[float]] = []
    for lineno, fields in _data_lines(path):
        if len(fields) != 8:
            raise MalformedLineError(
                f"{path}:{lineno}: expected 8 fields 'timestamp tx ty tz qx qy qz qw', "
                f"got {len(fields)}: {' '.join(fields)!r}"
            )
        try:
            stamps.append(parse_stamp(fields[0]))
            row = [float(x) for x in fields[1:]]
        except ValueError as err:
            raise MalformedLineError(f"{path}:{lineno}: {err}") from None
        if not np.all(np.isfinite(row)) or np.linalg.norm(row[3:]) < 1e-12:
            raise MalformedLineError(f"{path}:{lineno}: non-finite values or zero quaternion: {' '.join(fields)!r}")
        rows.append(row)
    data = np.asarray(rows, dtype=np.float64).reshape(-1, 7)
    T = np.tile(np.eye(4), (len(rows), 1, 1))
    if rows:
        T[:, :3, :3] = quat_to_rotmat(data[:, 3:] / np.linalg.norm(data[:, 3:], axis=1, keepdims=True))
        T[:, :3, 3] = data[:, :3]
    return np.asarray(stamps, dtype=np.int64), T


def _fmt(x: float, decimals: int | None) -> str:
    return repr(float(x)) if decimals is None else f"{x:.{decimals}f}"


def write_tum_trajectory(
    path: str | Path,
    stamps_ns: Sequence[int] | np.ndarray,
    T_world_cam: np.ndarray,
    *,
    decimals: int | None = None,
    stamp_decimals: int = 4,
    title: str = "ground truth trajectory",
) -> None:
    """Write ``T_world_cam`` poses in TUM format (``timestamp tx ty tz qx qy qz qw``).

    Args:
        path: Output file.
        stamps_ns: ``[N]`` stamps, nanoseconds (written exactly, at least ``stamp_decimals``).
        T_world_cam: ``[N, 4, 4]`` poses of the optical frame in the world frame, metres.
        decimals: Fixed decimals for pose values; ``None`` writes the shortest text that reads
            back to the identical float64 (exact round trip).
        stamp_decimals: Minimum decimals of the stamp (TUM ground truth uses 4).
        title: First comment line.

    Quaternions are XYZW with ``w >= 0``.
    """
    T = np.asarray(T_world_cam, dtype=np.float64).reshape(-1, 4, 4)
    stamps = np.asarray(stamps_ns, dtype=np.int64).reshape(-1)
    if len(stamps) != len(T):
        raise DataError(f"{path}: {len(stamps)} stamps but {len(T)} poses")
    quats = rotmat_to_quat(T[:, :3, :3]) if len(T) else np.zeros((0, 4))  # XYZW, w >= 0
    lines = [f"# {title}", f"# file: '{Path(path).parent.name}'", "# timestamp tx ty tz qx qy qz qw"]
    for stamp, t, q in zip(stamps.tolist(), T[:, :3, 3], quats):
        values = " ".join(_fmt(v, decimals) for v in (*t, *q))
        lines.append(f"{format_stamp(stamp, stamp_decimals)} {values}")
    Path(path).write_text("\n".join(lines) + "\n")


def associate(
    stamps_a: Sequence[int] | np.ndarray,
    stamps_b: Sequence[int] | np.ndarray,
    max_dt_s: float = 0.02,
    offset_s: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one stamp association with TUM's ``associate.py`` rule.

    All pairs with ``|a - (b + offset)| < max_dt`` are candidates; they are taken greedily in
    order of increasing difference (ties by stamp of ``a``, then of ``b``), each stamp used at
    most once; the matches are returned sorted by ``a``'s stamp.

    Args:
        stamps_a: ``[N]`` stamps, nanoseconds.
        stamps_b: ``[M]`` stamps, nanoseconds.
        max_dt_s: Maximum difference, seconds (strict), TUM's default 0.02.
        offset_s: Time offset added to ``b``, seconds.

    Returns:
        ``(idx_a[K], idx_b[K])`` int64 indices into the inputs.
    """
    a = np.asarray(stamps_a, dtype=np.int64).reshape(-1)
    b = np.asarray(stamps_b, dtype=np.int64).reshape(-1) + round(offset_s * 1e9)
    max_dt = round(max_dt_s * 1e9)
    if a.size == 0 or b.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order_b = np.argsort(b, kind="stable")
    b_sorted = b[order_b]
    lo = np.searchsorted(b_sorted, a - max_dt, side="right")
    hi = np.searchsorted(b_sorted, a + max_dt, side="left")
    counts = np.maximum(hi - lo, 0)
    cand_a = np.repeat(np.arange(a.size), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    cand_b = order_b[np.repeat(lo, counts) + offsets]
    diff = np.abs(a[cand_a] - b[cand_b])
    order = np.lexsort((b[cand_b], a[cand_a], diff))
    used_a = np.zeros(a.size, bool)
    used_b = np.zeros(b.size, bool)
    out_a: list[int] = []
    out_b: list[int] = []
    for k in order.tolist():
        i, j = int(cand_a[k]), int(cand_b[k])
        if not used_a[i] and not used_b[j]:
            used_a[i] = used_b[j] = True
            out_a.append(i)
            out_b.append(j)
    idx_a = np.asarray(out_a, dtype=np.int64)
    idx_b = np.asarray(out_b, dtype=np.int64)
    order_out = np.lexsort((idx_a, a[idx_a])) if idx_a.size else idx_a
    return idx_a[order_out], idx_b[order_out]
