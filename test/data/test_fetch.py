"""``fetch-tum`` against a loopback HTTP server (127.0.0.1) serving a synthetic TUM archive.

The server honours ``Range`` and can drop the connection part-way through a response, or
serve a corrupt archive; nothing leaves the machine.
"""

from __future__ import annotations

import hashlib
import io
import random
import socket
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vggt_uncertainty_ros.cli.main import main as cli_main
from vggt_uncertainty_ros.data.fetch import download, fetch_tum, read_checksums, tum_files, tum_sequence_name
from vggt_uncertainty_ros.errors import ConfigError, DataError

SEQ = "rgbd_dataset_freiburg1_xyz"


def _archive(seq: str = SEQ) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in (
            (f"{seq}/rgb.txt", "# rgb\n1.0 rgb/1.0.png\n"),
            (f"{seq}/groundtruth.txt", "1.0 0 0 0 0 0 0 1\n"),
            (f"{seq}/rgb/1.0.png", random.Random(0).randbytes(5000)),
        ):
            data = text if isinstance(text, bytes) else text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class Served:
    files: dict[str, bytes]
    drop_after: dict[str, int] = field(default_factory=dict)  # path -> bytes sent before dropping, once
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    base_url: str = ""


@pytest.fixture
def server() -> Iterator[Served]:
    served = Served(files={})

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep the test output clean
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            rng = self.headers.get("Range")
            served.requests.append((self.path, rng))
            body = served.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            start = int(rng.removeprefix("bytes=").rstrip("-")) if rng else 0
            if start >= len(body) and rng:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            chunk = body[start:]
            self.send_response(206 if rng else 200)
            if rng:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(chunk)))
            self.end_headers()
            cut = served.drop_after.pop(self.path, None)
            self.wfile.write(chunk if cut is None else chunk[:cut])
            self.wfile.flush()
            if cut is not None:
                self.close_connection = True

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    served.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/rgbd/dataset"
    try:
        yield served
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _path(fmt: str = "tgz") -> str:
    return f"/rgbd/dataset/freiburg1/{SEQ}.{fmt}"


def test_names_and_urls() -> None:
    assert tum_sequence_name("fr1_xyz") == (SEQ, "freiburg1")
    assert tum_sequence_name("freiburg1_xyz")[0] == SEQ
    assert tum_sequence_name("rgbd_dataset_freiburg3_long_office_household.tgz")[1] == "freiburg3"
    [f] = tum_files(["fr1_xyz"], ["bag"])
    assert f.url == f"https://cvg.cit.tum.de/rgbd/dataset/freiburg1/{SEQ}.bag"
    with pytest.raises(ConfigError, match="not a TUM RGB-D sequence"):
        tum_sequence_name("kitti_00")
    with pytest.raises(ConfigError, match="unknown format"):
        tum_files(["fr1_xyz"], ["zip"])


def test_fetch_extracts_and_verifies(server: Served, tmp_path: Path) -> None:
    body = _archive()
    server.files[_path()] = body
    server.files[_path("bag")] = b"#ROSBAG V2.0\n" + b"\0" * 3000
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{hashlib.sha256(body).hexdigest()}  {SEQ}.tgz\n")
    out = tmp_path / "out"
    argv = [
        "fetch-tum",
        "fr1_xyz",
        "--out",
        str(out),
        "--base-url",
        server.base_url,
        "--format",
        "both",
        "--checksums",
        str(sums),
        "--no-progress",
    ]
    assert cli_main(argv) == 0
    assert (out / SEQ / "rgb.txt").read_text().startswith("# rgb")
    assert (out / SEQ / "rgb" / "1.0.png").stat().st_size == 5000
    assert not (out / f"{SEQ}.tgz").exists()  # archive removed after extraction
    assert (out / f"{SEQ}.bag").read_bytes() == server.files[_path("bag")]
    n = len(server.requests)
    assert cli_main(argv) == 0  # everything there: nothing downloaded again
    assert len(server.requests) == n


def test_dropped_connection_resumes_with_range(server: Served, tmp_path: Path) -> None:
    body = _archive()  # a valid archive (about 5 kB), cut in the middle of the first response
    assert len(body) > 2000
    server.files[_path()] = body
    server.drop_after[_path()] = 1000
    [folder] = fetch_tum(
        ["fr1_xyz"],
        tmp_path,
        base_url=server.base_url,
        checksums={f"{SEQ}.tgz": hashlib.sha256(body).hexdigest()},
        progress=False,
    )
    assert (folder / "groundtruth.txt").is_file()
    assert server.requests == [(_path(), None), (_path(), "bytes=1000-")]


def test_interrupted_run_resumes_on_next_call(server: Served, tmp_path: Path) -> None:
    body = b"y" * 20000
    server.files[_path("bag")] = body
    server.drop_after[_path("bag")] = 7000
    url = f"{server.base_url}/freiburg1/{SEQ}.bag"
    dest = tmp_path / f"{SEQ}.bag"
    with pytest.raises(DataError, match="transfer interrupted after 7000 bytes.*rerun to resume"):
        download(url, dest, retries=0, progress=False)
    assert not dest.exists() and (tmp_path / f"{SEQ}.bag.part").stat().st_size == 7000
    download(url, dest, sha256=hashlib.sha256(body).hexdigest(), retries=0, progress=False)
    assert dest.read_bytes() == body and not (tmp_path / f"{SEQ}.bag.part").exists()
    assert server.requests[-1] == (_path("bag"), "bytes=7000-")


def test_corrupt_archive_and_bad_checksum(server: Served, tmp_path: Path) -> None:
    good = _archive()
    server.files[_path()] = good[: len(good) // 2] + b"\x00" * 64  # truncated gzip stream
    with pytest.raises(DataError, match="corrupt or truncated.*deleted"):
        fetch_tum(["fr1_xyz"], tmp_path, base_url=server.base_url, progress=False)
    assert not (tmp_path / f"{SEQ}.tgz").exists() and not (tmp_path / SEQ).exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no half-extracted folder left behind

    server.files[_path()] = good
    with pytest.raises(DataError, match="does not match"):
        fetch_tum(["fr1_xyz"], tmp_path, base_url=server.base_url, checksums={f"{SEQ}.tgz": "0" * 64}, progress=False)
    assert not (tmp_path / f"{SEQ}.tgz").exists()


def test_missing_file_and_offline(server: Served, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="HTTP 404"):
        fetch_tum(["fr2_desk"], tmp_path, base_url=server.base_url, progress=False)
    with socket.socket() as s:  # a port with nothing listening: what an unreachable server looks like
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert (
        cli_main(
            [
                "fetch-tum",
                "fr1_xyz",
                "--out",
                str(tmp_path),
                "--base-url",
                f"http://127.0.0.1:{port}/x",
                "--no-progress",
                "--retries",
                "0",
            ]
        )
        == 1
    )
    with pytest.raises(DataError, match="cannot reach 127.0.0.1.*offline"):
        fetch_tum(["fr1_xyz"], tmp_path, base_url=f"http://127.0.0.1:{port}/x", progress=False, retries=0)


def test_checksum_file_format(tmp_path: Path) -> None:
    path = tmp_path / "sums"
    path.write_text("# comment\n" + "A" * 64 + " *dir/x.tgz\n")
    assert read_checksums(path) == {"x.tgz": "a" * 64}
    path.write_text("nothex x.tgz\n")
    with pytest.raises(ConfigError, match="sums:1"):
        read_checksums(path)
