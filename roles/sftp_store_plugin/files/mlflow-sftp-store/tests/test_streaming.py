"""Streamed uploads (MLflow's StreamUploadMixin): straight from the request body to the SFTP host."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from conftest import ClientHome, MlflowServer
from mlflow.store.artifact.artifact_repo import StreamUploadMixin
from sshd_server import Sshd

from mlflow_sftp_store import SftpArtifactRepository, SftpConnectionError, SftpUploadSourceError
from mlflow_sftp_store.repository import PART_SUFFIX

MIB = 1024 * 1024


class Payload:
    """``size`` random bytes made block by block (never all in memory), hashed as they are read;
    optionally failing with ``fail_with`` once ``fail_after`` bytes were read."""

    def __init__(self, size: int, fail_after: int | None = None, fail_with: Exception | None = None) -> None:
        self.size = size
        self.sent = 0
        self.reads = 0
        self.sha = hashlib.sha256()
        self.fail_after = fail_after
        self.fail_with = fail_with or OSError("connection reset by the HTTP client")

    def read(self, n: int = -1) -> bytes:
        self.reads += 1
        if self.fail_after is not None and self.sent >= self.fail_after:
            raise self.fail_with
        n = MIB if n is None or n < 0 else n
        block = os.urandom(min(n, self.size - self.sent))
        self.sent += len(block)
        self.sha.update(block)
        return block

    def __iter__(self) -> Iterator[bytes]:
        while block := self.read(MIB):
            yield block

    async def chunks(self, chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
        """As Starlette's ``request.stream()``: small chunks, a pause now and then."""
        while block := self.read(chunk):
            yield block
            if self.reads % 64 == 0:
                await asyncio.sleep(0)


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _parts(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"*{PART_SUFFIX}")) if directory.exists() else []


def _part_bytes(directory: Path) -> int:
    total = 0
    for p in _parts(directory):
        try:
            total += p.stat().st_size
        except FileNotFoundError:
            pass
    return total


class TreeWatcher:
    """Samples the bytes of all files below ``root`` every 20 ms in a thread; ``peak`` is the largest."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def total(self) -> int:
        size = 0
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                try:
                    size += os.lstat(os.path.join(dirpath, name)).st_size
                except FileNotFoundError:
                    pass
        return size

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.total())
            self.samples += 1
            time.sleep(0.02)

    def __enter__(self) -> TreeWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _put(url: str, path: str, body: Payload, timeout: float = 300) -> tuple[int | None, bytes]:
    """PUT ``body`` to the server's proxied-artifact endpoint, as MLflow's client does (one request,
    Content-Length known, body sent block by block). Status None: the server answered early and closed
    the connection while the body was still being sent (it does not read the rest of a failed upload)."""
    parsed = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    try:
        conn.request(
            "PUT",
            f"/api/2.0/mlflow-artifacts/artifacts/{path}",
            body=iter(body),
            headers={"Content-Length": str(body.size), "Content-Type": "application/octet-stream"},
        )
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (BrokenPipeError, ConnectionResetError):
        return None, b""
    finally:
        conn.close()


def _list(url: str, path: str) -> dict[str, int | None]:
    query = urllib.parse.urlencode({"path": path})
    conn = http.client.HTTPConnection(urllib.parse.urlparse(url).netloc, timeout=60)
    try:
        conn.request("GET", f"/api/2.0/mlflow-artifacts/artifacts?{query}")
        files = json.loads(conn.getresponse().read()).get("files", [])
    finally:
        conn.close()
    return {f["path"]: int(f["file_size"]) if "file_size" in f else None for f in files}


# --------------------------------------------------------------------------- through mlflow server


@pytest.mark.parametrize(
    ("mlflow_server", "size_mib"),
    [("uvicorn", 256), ("uvicorn", 1024), ("gunicorn", 256)],
    ids=["uvicorn-256MiB", "uvicorn-1GiB", "gunicorn-256MiB"],
    indirect=["mlflow_server"],
)
def test_large_proxied_upload_streams_to_sftp_without_local_spooling(
    mlflow_server: MlflowServer, size_mib: int
) -> None:
    """A proxied upload through a real `mlflow server` (FastAPI route under uvicorn, the async stream;
    Flask handler under gunicorn, the blocking one) arrives byte-identical, and the server's TMPDIR
    (PrivateTmp, a RAM tmpfs on Debian 13) never holds more than a trace of it."""
    url, remote = mlflow_server.url, mlflow_server.remote
    body = Payload(size_mib * MIB)
    before = TreeWatcher(mlflow_server.tmpdir).total()
    with TreeWatcher(mlflow_server.tmpdir) as tmp_watch, TreeWatcher(remote) as remote_watch:
        status, text = _put(url, "streamed/big.bin", body)
    assert status == 200, text[-2000:]
    assert body.sent == body.size
    stored = remote / "streamed" / "big.bin"
    assert stored.stat().st_size == body.size
    assert _sha256(stored) == body.sha.hexdigest()
    assert not _parts(remote / "streamed")
    # The watcher ran during the upload (it saw the part file grow on the SFTP side) ...
    assert tmp_watch.samples >= 10 and remote_watch.peak >= 64 * MIB
    # ... and the server's temp dir stayed as it was (the stock path would put the whole file there).
    assert tmp_watch.peak - before < 1 * MIB, f"server TMPDIR grew to {tmp_watch.peak} bytes"
    assert _list(url, "streamed") == {"big.bin": body.size}


def test_session_dropped_mid_streamed_upload_through_server(
    mlflow_server: MlflowServer, ready_home: ClientHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SFTP session dies mid-stream: the request fails (a stream cannot be replayed), the part file
    is removed, nothing half-written appears; MLflow's client retries the PUT and then succeeds."""
    from mlflow import MlflowClient

    url, remote = mlflow_server.url, mlflow_server.remote
    sshd: Sshd = ready_home.sshd
    target = remote / "dropped"

    body = Payload(96 * MIB)
    fired = _kill_when(sshd, lambda: _part_bytes(target) > 8 * MIB)
    status, text = _put(url, "dropped/raw.bin", body)
    fired.wait_done()
    assert fired.times, "the upload finished before the session could be killed"
    assert status in (500, None), text
    assert status is None or b"cannot be replayed" in text
    assert "which cannot be replayed" in mlflow_server.log.read_text()
    assert not (target / "raw.bin").exists()
    assert not _parts(target)

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    local = tmp_path / "model.bin"
    with open(local, "wb") as fh:
        for block in Payload(64 * MIB):
            fh.write(block)
    client = MlflowClient(url)
    run = client.create_run(client.create_experiment("dropped"))
    run_dir = remote / run.info.experiment_id / run.info.run_id / "artifacts"
    fired = _kill_when(sshd, lambda: _part_bytes(run_dir) > 8 * MIB)
    client.log_artifact(run.info.run_id, str(local))
    fired.wait_done()
    assert fired.times, "the upload finished before the session could be killed"
    assert _sha256(run_dir / "model.bin") == _sha256(local)
    assert not _parts(run_dir)
    assert not any(mlflow_server.tmpdir.iterdir())


class _Killer:
    def __init__(self) -> None:
        self.times: list[float] = []
        self.thread: threading.Thread | None = None

    def wait_done(self) -> None:
        assert self.thread is not None
        self.thread.join()


def _kill_when(sshd: Sshd, condition, timeout: float = 60.0) -> _Killer:
    killer = _Killer()

    def run() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                killer.times.append(time.monotonic())
                sshd.kill_sessions()
                return
            time.sleep(0.005)

    killer.thread = threading.Thread(target=run, daemon=True)
    killer.thread.start()
    return killer


# --------------------------------------------------------------------------- the repository itself


def test_repository_is_a_stream_upload_repository(ready_home: ClientHome, tmp_path: Path) -> None:
    assert isinstance(SftpArtifactRepository(ready_home.uri(tmp_path / "r")), StreamUploadMixin)


def test_blocking_and_async_streams_arrive_intact(ready_home: ClientHome, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    repo = SftpArtifactRepository(ready_home.uri(remote))

    body = Payload(5 * MIB + 17)
    repo.log_artifact_from_stream(body, "dir/ignored/weights.bin", "a/b")  # directory parts ignored
    assert _sha256(remote / "a" / "b" / "weights.bin") == body.sha.hexdigest()

    body = Payload(3 * MIB + 5)
    asyncio.run(repo.log_artifact_from_async_stream(body.chunks(), "chunks.bin"))
    assert _sha256(remote / "chunks.bin") == body.sha.hexdigest()

    asyncio.run(repo.log_artifact_from_async_stream(Payload(0).chunks(), "empty.txt", "a"))
    repo.log_artifact_from_stream(Payload(0), "empty2.txt", "a")
    assert (remote / "a" / "empty.txt").read_bytes() == b"" == (remote / "a" / "empty2.txt").read_bytes()
    assert not _parts(remote) and not _parts(remote / "a")


def test_failing_source_is_not_retried_and_leaves_nothing(ready_home: ClientHome, tmp_path: Path) -> None:
    """A body that breaks off (an OSError, like a reset HTTP connection) is no SFTP failure: no retry,
    the part file is removed, the target never appears."""
    remote = tmp_path / "remote"
    repo = SftpArtifactRepository(ready_home.uri(remote))
    body = Payload(64 * MIB, fail_after=5 * MIB)
    with pytest.raises(SftpUploadSourceError, match="after 5242880 bytes"):
        repo.log_artifact_from_stream(body, "broken.bin", "x")
    assert body.sent == 5 * MIB and body.reads == 6  # read once, not replayed
    assert list((remote / "x").iterdir()) == []

    body = Payload(64 * MIB, fail_after=5 * MIB, fail_with=RuntimeError("client disconnected"))
    with pytest.raises(RuntimeError, match="client disconnected"):
        asyncio.run(repo.log_artifact_from_async_stream(body.chunks(), "broken.bin", "y"))
    assert list((remote / "y").iterdir()) == []


def test_session_dropped_mid_stream_removes_the_part_file(ready_home: ClientHome, tmp_path: Path) -> None:
    sshd: Sshd = ready_home.sshd
    remote = tmp_path / "remote"
    repo = SftpArtifactRepository(ready_home.uri(remote))
    repo.log_artifact_from_stream(Payload(1), "warm.bin", "x")

    for run_upload in (
        lambda: repo.log_artifact_from_stream(Payload(96 * MIB), "big.bin", "x"),
        lambda: asyncio.run(repo.log_artifact_from_async_stream(Payload(96 * MIB).chunks(), "big.bin", "x")),
    ):
        killer = _kill_when(sshd, lambda: _part_bytes(remote / "x") > 8 * MIB)
        with pytest.raises(SftpConnectionError, match="cannot be replayed"):
            run_upload()
        killer.wait_done()
        assert killer.times
        assert sorted(p.name for p in (remote / "x").iterdir()) == ["warm.bin"]
    # and the repository keeps working
    repo.log_artifact_from_stream(Payload(2 * MIB), "after.bin", "x")
    assert (remote / "x" / "after.bin").stat().st_size == 2 * MIB


def test_slow_streamed_upload_does_not_starve_listings_and_downloads(
    ready_home: ClientHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A streamed upload holds its SSH connection as long as the HTTP client sends; it comes from a
    pool of its own, so with one connection each, listing and downloading go on meanwhile."""
    monkeypatch.setenv("MLFLOW_SFTP_POOL_SIZE", "1")
    monkeypatch.setenv("MLFLOW_SFTP_STREAM_POOL_SIZE", "1")
    remote = tmp_path / "remote"
    repo = SftpArtifactRepository(ready_home.uri(remote))
    repo.log_artifact_from_stream(Payload(10), "small.txt")
    gate, waiting = threading.Event(), threading.Event()

    class SlowClient:
        def __init__(self) -> None:
            self.calls = 0

        def read(self, n: int = -1) -> bytes:
            self.calls += 1
            if self.calls == 1:
                return b"x" * MIB
            waiting.set()
            gate.wait(60)
            return b""

    uploader = threading.Thread(target=repo.log_artifact_from_stream, args=(SlowClient(), "slow.bin"))
    uploader.start()
    try:
        assert waiting.wait(30)
        assert {f.path for f in repo.list_artifacts()} == {"small.txt"}  # the part file is hidden
        out = tmp_path / "out"
        out.mkdir()
        assert Path(repo.download_artifacts("small.txt", str(out))).stat().st_size == 10
        # Still stalled: listing and download did not wait for its connection (with one shared pool
        # they would have waited until the client gave up, 60 s, and seen slow.bin).
        assert uploader.is_alive() and not gate.is_set()
    finally:
        gate.set()
        uploader.join(60)
    assert (remote / "slow.bin").read_bytes() == b"x" * MIB
