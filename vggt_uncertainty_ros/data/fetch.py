"""Downloading TUM RGB-D sequences: resumable HTTP transfer, checksum, safe extraction.

The official server lays files out as
``{base_url}/freiburg{N}/rgbd_dataset_freiburg{N}_{name}.tgz`` (and ``.bag``), with
``base_url`` = :data:`TUM_BASE_URL`; a mirror with the same layout is used through
``base_url``. A sequence name may be written ``freiburg1_xyz``, ``fr1_xyz`` or
``rgbd_dataset_freiburg1_xyz``.

A transfer goes to ``<file>.part`` and resumes from its size with an HTTP ``Range`` request
(automatically after a dropped connection, up to ``retries`` times, and on the next call
after an interruption); the finished file is renamed into place. When a SHA-256 is known (a
``sha256sum``-style file given by the caller) the file is checked, and a mismatch deletes it.
A ``.tgz`` is extracted into a temporary folder that is renamed when complete; members that
would land outside the output folder are refused (tarfile's ``data`` filter); a corrupt
archive is deleted with a clear error so the next call downloads it again.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tqdm import tqdm

from vggt_uncertainty_ros.errors import ConfigError, DataError

__all__ = [
    "FORMATS",
    "TUM_BASE_URL",
    "TumFile",
    "download",
    "extract_tgz",
    "fetch_tum",
    "read_checksums",
    "sha256_file",
    "tum_files",
    "tum_sequence_name",
]

_log = logging.getLogger(__name__)

#: the official TUM RGB-D download root.
TUM_BASE_URL = "https://cvg.cit.tum.de/rgbd/dataset"
FORMATS = ("tgz", "bag")
_NAME = re.compile(r"^(?:rgbd_dataset_)?(?:freiburg|fr)([123])_([a-z0-9_]+)$")
_CHUNK = 1 << 16


@dataclass(frozen=True)
class TumFile:
    """One file to fetch.

    Attributes:
        sequence: canonical name, e.g. ``rgbd_dataset_freiburg1_xyz`` (also the extracted folder).
        fmt: ``tgz`` or ``bag``.
        url: where it is downloaded from.
        filename: its file name, e.g. ``rgbd_dataset_freiburg1_xyz.tgz``.
    """

    sequence: str
    fmt: str
    url: str
    filename: str


def tum_sequence_name(name: str) -> tuple[str, str]:
    """``(canonical name, category)`` of a TUM sequence, e.g. ``("rgbd_dataset_freiburg1_xyz", "freiburg1")``.

    Raises:
        ConfigError: the name does not look like a TUM RGB-D sequence.
    """
    m = _NAME.match(name.strip().lower().removesuffix(".tgz").removesuffix(".bag"))
    if m is None:
        raise ConfigError(
            f"{name!r} is not a TUM RGB-D sequence name; expected e.g. freiburg1_xyz, fr2_desk "
            "or rgbd_dataset_freiburg3_long_office_household"
        )
    category = f"freiburg{m.group(1)}"
    return f"rgbd_dataset_{category}_{m.group(2)}", category


def tum_files(names: Iterable[str], formats: Iterable[str] = ("tgz",), base_url: str = TUM_BASE_URL) -> list[TumFile]:
    """The files to fetch for ``names`` in ``formats`` (``tgz`` and/or ``bag``).

    Raises:
        ConfigError: unknown format or sequence name.
    """
    formats = list(formats)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ConfigError(f"unknown format(s) {bad}; expected some of {FORMATS}")
    out = []
    for name in names:
        canonical, category = tum_sequence_name(name)
        for fmt in formats:
            filename = f"{canonical}.{fmt}"
            out.append(TumFile(canonical, fmt, f"{base_url.rstrip('/')}/{category}/{filename}", filename))
    return out


def read_checksums(path: str | Path) -> dict[str, str]:
    """``{file name: sha256 hex}`` from a ``sha256sum``-style file (``<hex>  <name>`` per line).

    Raises:
        ConfigError: the file is missing or a line is malformed.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise ConfigError(f"checksum file {path}: {err}") from err
    out = {}
    for no, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-fA-F]{64}", parts[0]):
            raise ConfigError(f"{path}:{no}: expected '<sha256 hex>  <file name>', got {line!r}")
        out[Path(parts[1].lstrip("*")).name] = parts[0].lower()
    return out


def sha256_file(path: str | Path) -> str:
    """SHA-256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _offline_error(url: str, err: BaseException | str) -> DataError:
    host = urlsplit(url).netloc
    return DataError(
        f"cannot reach {host} to download {url} ({err}); are you offline? "
        "Rerun when connected (the transfer resumes) or point --base-url at a mirror"
    )


def _open(url: str, start: int, timeout_s: float) -> http.client.HTTPResponse:
    req = urllib.request.Request(url, headers={"User-Agent": "vggt-uncertainty-fetch"})
    if start:
        req.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(req, timeout=timeout_s)  # noqa: S310 (http/https URLs only, checked by caller)


def _transfer(url: str, part: Path, timeout_s: float, progress: bool) -> None:
    """One attempt: append to ``part`` from its size; raises OSError-likes on a dropped link."""
    start = part.stat().st_size if part.exists() else 0
    try:
        resp = _open(url, start, timeout_s)
    except urllib.error.HTTPError as err:
        if err.code == 416 and start:  # nothing left to send: the part is complete
            return
        if err.code == 404:
            raise DataError(f"{url} not found (HTTP 404); check the sequence name and --base-url") from err
        raise DataError(f"{url}: HTTP {err.code} {err.reason}") from err
    with resp:
        if start and resp.status != 206:  # the server ignored Range: start over
            _log.info("%s: server does not resume (HTTP %d); downloading from the start", url, resp.status)
            start = 0
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        mode = "ab" if start else "wb"
        with (
            open(part, mode) as fh,
            tqdm(
                total=total,
                initial=start,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(".part"),
                disable=not progress,
                leave=False,
            ) as bar,
        ):
            while True:
                block = resp.read(_CHUNK)
                if not block:
                    break
                fh.write(block)
                bar.update(len(block))
        if total is not None and part.stat().st_size < total:
            raise http.client.IncompleteRead(b"", total - part.stat().st_size)


def download(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    *,
    retries: int = 3,
    timeout_s: float = 30.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` with resume; returns ``dest``.

    An existing ``dest`` is kept (and checked when ``sha256`` is given). The transfer writes
    ``dest.part`` and continues it with HTTP ``Range`` after a dropped connection (``retries``
    more attempts) or on a later call.

    Raises:
        ConfigError: the URL is not http(s).
        DataError: unreachable host (offline), HTTP error, transfer still incomplete after the
            retries (``.part`` kept for the next call), or checksum mismatch (file deleted).
    """
    if urlsplit(url).scheme not in ("http", "https"):
        raise ConfigError(f"{url}: only http(s) URLs are fetched")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if not dest.exists():
        for attempt in range(retries + 1):
            try:
                _transfer(url, part, timeout_s, progress)
                break
            except (http.client.IncompleteRead, ConnectionError, TimeoutError) as err:
                done = part.stat().st_size if part.exists() else 0
                if attempt == retries:
                    raise DataError(
                        f"{url}: transfer interrupted after {done} bytes ({err!r}); rerun to resume from {part}"
                    ) from err
                _log.warning("%s: connection dropped after %d bytes (%r); resuming", url, done, err)
            except urllib.error.URLError as err:
                raise _offline_error(url, err.reason) from err
            except OSError as err:  # e.g. name resolution or refused connection outside urllib's wrapper
                raise _offline_error(url, err) from err
        os.replace(part, dest)
    if sha256:
        got = sha256_file(dest)
        if got != sha256.lower():
            dest.unlink()
            raise DataError(
                f"{dest.name}: SHA-256 {got} does not match the expected {sha256.lower()}; "
                "the file was deleted, rerun to download it again"
            )
        _log.info("%s: SHA-256 verified", dest.name)
    return dest


def extract_tgz(archive: str | Path, out_dir: str | Path, expect_folder: str | None = None) -> Path:
    """Extract a ``.tgz`` into ``out_dir`` atomically; returns the extracted top folder.

    Raises:
        DataError: the archive is corrupt or truncated (it is deleted), holds unsafe members,
            or lacks ``expect_folder``.
    """
    archive, out_dir = Path(archive), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir, prefix=".extract-"))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
            if isinstance(err, tarfile.FilterError):
                raise DataError(f"{archive.name} holds an unsafe member ({err}); not extracted") from err
            archive.unlink(missing_ok=True)
            raise DataError(
                f"{archive.name} is corrupt or truncated ({err}); it was deleted, rerun to download it again"
            ) from err
        tops = [p for p in tmp.iterdir()]
        if expect_folder is not None:
            if not (tmp / expect_folder).is_dir():
                raise DataError(
                    f"{archive.name} does not contain the folder {expect_folder}/ "
                    f"(found {sorted(p.name for p in tops)})"
                )
            tops = [tmp / expect_folder]
        if len(tops) != 1 or not tops[0].is_dir():
            raise DataError(f"{archive.name}: expected one top-level folder, found {sorted(p.name for p in tops)}")
        final = out_dir / tops[0].name
        if final.exists():
            shutil.rmtree(final)
        os.replace(tops[0], final)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch_tum(
    names: Iterable[str],
    out_dir: str | Path,
    *,
    formats: Iterable[str] = ("tgz",),
    base_url: str = TUM_BASE_URL,
    checksums: Mapping[str, str] | None = None,
    keep_archive: bool = False,
    retries: int = 3,
    timeout_s: float = 30.0,
    progress: bool = True,
) -> list[Path]:
    """Download (and extract) TUM RGB-D sequences; returns the sequence folders and bag files.

    A sequence whose folder already holds ``rgb.txt`` (or whose ``.bag`` exists) is skipped.

    Raises:
        ConfigError: bad name or format.
        DataError: see :func:`download` and :func:`extract_tgz`.
    """
    out_dir = Path(out_dir)
    checksums = dict(checksums or {})
    results = []
    for f in tum_files(names, formats, base_url):
        if f.fmt == "tgz":
            folder = out_dir / f.sequence
            if (folder / "rgb.txt").is_file():
                _log.info("%s: already extracted in %s", f.sequence, folder)
                results.append(folder)
                continue
            archive = download(
                f.url,
                out_dir / f.filename,
                checksums.get(f.filename),
                retries=retries,
                timeout_s=timeout_s,
                progress=progress,
            )
            folder = extract_tgz(archive, out_dir, expect_folder=f.sequence)
            if not keep_archive:
                archive.unlink()
            _log.info("%s -> %s", f.url, folder)
            results.append(folder)
        else:
            bag = out_dir / f.filename
            if not bag.exists():
                download(f.url, bag, checksums.get(f.filename), retries=retries, timeout_s=timeout_s, progress=progress)
                _log.info("%s -> %s", f.url, bag)
            results.append(bag)
    return results
