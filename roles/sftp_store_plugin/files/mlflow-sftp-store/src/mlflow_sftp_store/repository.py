"""MLflow artifact repository for ``sftp://`` URIs, built directly on paramiko."""

from __future__ import annotations

import errno
import logging
import os
import posixpath
import socket
import stat
import time
from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import BinaryIO, TypeVar

import paramiko
from mlflow.entities import FileInfo
from mlflow.store.artifact.artifact_repo import ArtifactRepository

try:
    from mlflow.store.artifact.artifact_repo import StreamUploadMixin
except ImportError:  # an MLflow without streamed uploads: its server spools them to a temp file

    class StreamUploadMixin:  # type: ignore[no-redef]
        """Stand-in; the methods below are then simply unused."""


from mlflow_sftp_store.config import (
    ENV_STALE_PART_HOURS,
    Target,
    parse_uri,
    resolve_target,
    stale_part_seconds,
)
from mlflow_sftp_store.connection import SftpConnection, get_pool
from mlflow_sftp_store.errors import (
    SftpAuthenticationError,
    SftpConfigError,
    SftpConnectionError,
    SftpHostKeyError,
    SftpNotFoundError,
    SftpPermissionError,
    SftpStoreError,
    SftpUploadSourceError,
    SftpUriError,
)
from mlflow_sftp_store.parts import PART_SUFFIX, part_name, remove_stale, sweep_due
from mlflow_sftp_store.streaming import Source, run_with_async_source, stream_blocks

__all__ = ["PART_SUFFIX", "SftpArtifactRepository"]

_logger = logging.getLogger(__name__)
T = TypeVar("T")

LOCAL_BLOCK = 1024 * 1024
# Outstanding READ requests while downloading (x 255 KiB on OpenSSH = 4 MiB, twice the window).
MAX_PREFETCH_REQUESTS = 16
RETRY_DELAY = 0.5

_NO_RETRY = (
    SftpAuthenticationError,
    SftpHostKeyError,
    SftpPermissionError,
    SftpConfigError,
    SftpNotFoundError,
    SftpUploadSourceError,
)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _sweep_note() -> str:
    try:
        seconds = stale_part_seconds()
    except SftpConfigError as exc:
        return str(exc)
    if not seconds:
        return f"{ENV_STALE_PART_HOURS}=0 turns sweeping off: remove it by hand"
    return f"it is swept once untouched for {seconds / 3600:g} h ({ENV_STALE_PART_HOURS})"


def _is_connection_failure(exc: BaseException, conn: SftpConnection | None) -> bool:
    """True when ``exc`` means the SSH connection is unusable (so a fresh one may succeed)."""
    if isinstance(exc, _NO_RETRY):
        return False
    if isinstance(exc, SftpConnectionError):
        return True
    if isinstance(exc, (paramiko.AuthenticationException, paramiko.BadHostKeyException)):
        return False
    if isinstance(exc, (EOFError, socket.timeout, ConnectionError, paramiko.SSHException)):
        return True
    if isinstance(exc, paramiko.sftp.SFTPError):  # garbled stream
        return True
    if isinstance(exc, OSError):
        # SFTP status errors (ENOENT, EACCES, failure) are OSErrors too: only a dead link counts.
        if conn is not None and not conn.is_alive():
            return True
        return exc.errno is None and "socket is closed" in str(exc).lower()
    return False


def _quiet_prefetch_thread(handle: paramiko.SFTPFile) -> None:
    """Keep paramiko's prefetch thread from printing a traceback when the connection drops.

    The reading side sees the same failure and handles it (retry), so the thread's copy is noise.
    """
    original = getattr(handle, "_prefetch_thread", None)
    if original is None:
        return

    def quiet(*args: object, **kwargs: object) -> None:
        try:
            original(*args, **kwargs)
        except (EOFError, OSError, paramiko.SSHException) as exc:
            _logger.debug("SFTP prefetch stopped: %s: %s", type(exc).__name__, exc)

    handle._prefetch_thread = quiet  # type: ignore[method-assign]


class _Part:
    """The part file of the current attempt of one upload (None once renamed or removed)."""

    def __init__(self) -> None:
        self.path: str | None = None

    def remove(self, sftp: paramiko.SFTPClient) -> bool:
        """Remove it if there is one; True when it is gone. Only ever this upload's own file."""
        if self.path is None:
            return True
        try:
            sftp.remove(self.path)
        except FileNotFoundError:
            pass
        except Exception as exc:
            _logger.debug("Could not remove part file %s: %s", self.path, _describe(exc))
            return False
        self.path = None
        return True


class SftpArtifactRepository(ArtifactRepository, StreamUploadMixin):
    """Artifacts in a directory of an SSH server, read and written over SFTP (paramiko, no pysftp)."""

    def __init__(
        self,
        artifact_uri: str,
        tracking_uri: str | None = None,
        registry_uri: str | None = None,
    ) -> None:
        parsed = parse_uri(artifact_uri)
        try:
            super().__init__(artifact_uri, tracking_uri=tracking_uri, registry_uri=registry_uri)
        except TypeError:  # older MLflow: ArtifactRepository(artifact_uri[, tracking_uri])
            super().__init__(artifact_uri)
        self.path: str = parsed.path
        self._target: Target = resolve_target(parsed)

    # ------------------------------------------------------------------ plumbing

    @property
    def target(self) -> Target:
        """Resolved connection parameters (host, port, user, key files, known_hosts files)."""
        return self._target

    def _full(self, rel: str | None) -> str:
        if not rel:
            return self.path
        full = posixpath.normpath(posixpath.join(self.path, rel.lstrip("/")))
        base = self.path.rstrip("/")
        if full != self.path and not full.startswith(base + "/"):
            raise SftpUriError(f"Artifact path {rel!r} points outside the artifact root {self.path!r}")
        return full

    def _run(
        self,
        what: str,
        func: Callable[[SftpConnection], T],
        may_retry: Callable[[], bool] | None = None,
        streams: bool = False,
    ) -> T:
        """Run ``func`` on a pooled connection (``streams``: from the streamed uploads' pool); after a
        connection failure retry once on a fresh one (unless ``may_retry()`` says no: a stream already
        partly read cannot be sent again)."""
        pool = get_pool(self._target, streams)
        for attempt in (1, 2):
            conn: SftpConnection | None = None
            reusable = False
            try:
                conn = pool.acquire(self._target)
                result = func(conn)
                reusable = True
                return result
            except Exception as exc:
                lost = _is_connection_failure(exc, conn)
                reusable = not lost and conn is not None and conn.is_alive()
                if not lost:
                    raise
                if attempt == 1 and may_retry is not None and not may_retry():
                    raise SftpConnectionError(
                        f"SFTP {what} on {self._target.display} failed: the connection was lost in the "
                        f"middle of a streamed upload, which cannot be replayed ({_describe(exc)}); "
                        "nothing was stored, send it again"
                    ) from exc
                if attempt == 2:
                    if isinstance(exc, SftpConnectionError):
                        raise
                    raise SftpConnectionError(
                        f"SFTP {what} on {self._target.display} failed twice: the connection was lost "
                        f"({_describe(exc)})"
                    ) from exc
                _logger.warning(
                    "SFTP connection to %s lost during %s (%s); retrying on a new connection",
                    self._target.display,
                    what,
                    _describe(exc),
                )
            finally:
                if conn is not None:
                    pool.release(conn, reusable)
            time.sleep(RETRY_DELAY)
        raise AssertionError("unreachable")

    @contextmanager
    def _remote(self, path: str) -> Iterator[None]:
        """Turn permission and not-found errors into messages naming the remote path and user."""
        try:
            yield
        except PermissionError as exc:
            raise SftpPermissionError(
                f"Permission denied on remote path {path!r} for user {self._target.username!r} on "
                f"{self._target.hostname} port {self._target.port} ({exc.strerror or exc})"
            ) from exc
        except FileNotFoundError as exc:
            raise SftpNotFoundError(f"Remote path {path!r} does not exist on {self._target.display}") from exc

    def _stat(self, sftp: paramiko.SFTPClient, path: str) -> paramiko.SFTPAttributes | None:
        try:
            with self._remote(path):
                return sftp.stat(path)
        except SftpNotFoundError:
            return None

    def _makedirs(self, sftp: paramiko.SFTPClient, path: str) -> None:
        st = self._stat(sftp, path)
        if st is not None:
            if not stat.S_ISDIR(st.st_mode or 0):
                raise SftpStoreError(f"Remote path {path!r} on {self._target.display} is not a directory")
            return
        parent = posixpath.dirname(path)
        if parent != path:
            self._makedirs(sftp, parent)
        try:
            with self._remote(path):
                sftp.mkdir(path)
        except (OSError, SftpStoreError):
            st = self._stat(sftp, path)  # created concurrently?
            if st is None or not stat.S_ISDIR(st.st_mode or 0):
                raise

    def _write_part(
        self,
        conn: SftpConnection,
        blocks: Iterable[bytes],
        remote_path: str,
        expected: int | None,
        part: _Part,
    ) -> None:
        """Write ``blocks`` to a fresh part file next to ``remote_path``, check its size, rename it into
        place. On a failure with the connection still usable the part file is removed here."""
        sftp = conn.sftp
        directory, name = posixpath.split(remote_path)
        part.path = posixpath.join(directory, part_name(name))
        total = 0
        try:
            with self._remote(directory):
                with sftp.open(part.path, "wb", bufsize=0) as dst:
                    self._sweep_on_upload(sftp, directory, part.path)
                    dst.set_pipelined(True)
                    dst.MAX_REQUEST_SIZE = conn.write_chunk
                    for block in blocks:
                        dst.write(block)
                        total += len(block)
                written = sftp.stat(part.path).st_size
            if written != total or (expected is not None and total != expected):
                want = total if expected is None else expected
                raise SftpStoreError(f"Upload to {remote_path!r} is incomplete ({written} of {want} bytes)")
            with self._remote(remote_path):
                self._rename(sftp, part.path, remote_path)
            part.path = None
        except Exception as exc:
            if conn.is_alive() and not _is_connection_failure(exc, conn):
                part.remove(sftp)
            raise

    def _sweep_on_upload(self, sftp: paramiko.SFTPClient, directory: str, own_part: str) -> None:
        """Remove abandoned part files of ``directory`` (at most once per directory and hour).

        The age is measured on the SFTP server's clock: the mtime of our own, just created part file.
        """
        max_age = stale_part_seconds()
        if not sweep_due((*self._target.pool_key, directory), max_age):
            return
        try:
            now = sftp.stat(own_part).st_mtime
            entries = sftp.listdir_attr(directory)
        except OSError as exc:
            _logger.debug("No part-file sweep in %s: %s", directory, exc)
            return
        if now is not None:
            remove_stale(sftp, directory, entries, now, max_age)

    @staticmethod
    def _rename(sftp: paramiko.SFTPClient, src: str, dst: str) -> None:
        try:
            sftp.posix_rename(src, dst)
        except OSError as exc:
            if isinstance(exc, PermissionError) or exc.errno == errno.ENOENT:
                raise
            # Server without posix-rename@openssh.com: plain rename refuses to overwrite.
            try:
                sftp.remove(dst)
            except FileNotFoundError:
                pass
            sftp.rename(src, dst)

    def _discard_part(self, part: _Part, streams: bool) -> None:
        """Remove the part file of a failed upload over a fresh connection (best effort: one try; a
        leftover is swept by age later)."""
        if part.path is None:
            return
        pool = get_pool(self._target, streams)
        conn: SftpConnection | None = None
        ok = False
        try:
            conn = pool.acquire(self._target)
            ok = part.remove(conn.sftp) or conn.is_alive()
        except Exception as exc:
            _logger.warning(
                "Could not remove the part file %s of a failed upload on %s (%s); %s",
                part.path,
                self._target.display,
                _describe(exc),
                _sweep_note(),
            )
        finally:
            if conn is not None:
                pool.release(conn, ok and conn.is_alive())

    def _upload_op(self, remote_path: str, op: Callable[[SftpConnection], None], part: _Part, **kw) -> None:
        try:
            self._run(f"upload of {remote_path}", op, **kw)
        except BaseException:
            self._discard_part(part, kw.get("streams", False))
            raise

    def _upload_with_cleanup(self, local_file: str, remote_path: str) -> None:
        """Upload a local file; after a lost connection it is sent again from the start."""
        part = _Part()

        def op(conn: SftpConnection) -> None:
            part.remove(conn.sftp)  # the previous attempt's, if any: only ours, never other uploads'
            with open(local_file, "rb") as src:
                size = os.fstat(src.fileno()).st_size
                self._write_part(conn, stream_blocks(src, LOCAL_BLOCK), remote_path, size, part)

        self._upload_op(remote_path, op, part)

    def _upload_stream(self, blocks: Iterator[bytes], remote_path: str) -> None:
        """Upload what ``blocks`` yields (a request body); retried only if nothing was read yet."""
        source = Source(blocks, f"the content for {remote_path!r}")
        part = _Part()

        def op(conn: SftpConnection) -> None:
            part.remove(conn.sftp)
            self._write_part(conn, source, remote_path, None, part)

        try:
            self._upload_op(remote_path, op, part, may_retry=lambda: source.consumed == 0, streams=True)
        except Exception as exc:
            _logger.warning(
                "Streamed upload to %s on %s failed after %d bytes; nothing was stored: %s",
                remote_path,
                self._target.display,
                source.consumed,
                _describe(exc),
            )
            raise

    def _stream_destination(self, artifact_file_name: str, artifact_path: str | None) -> str:
        name = posixpath.basename(artifact_file_name.replace("\\", "/"))
        if name in ("", ".", ".."):
            raise SftpUriError(f"Artifact file name {artifact_file_name!r} names no file")
        remote_dir = self._full(artifact_path)
        self._run(f"mkdir {remote_dir}", lambda c: self._makedirs(c.sftp, remote_dir))
        return posixpath.join(remote_dir, name)

    # ------------------------------------------------------------------ ArtifactRepository API

    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        """Upload one local file into ``artifact_path`` (created if missing)."""
        remote_dir = self._full(artifact_path)
        self._run(f"mkdir {remote_dir}", lambda c: self._makedirs(c.sftp, remote_dir))
        remote_file = posixpath.join(remote_dir, os.path.basename(local_file))
        self._upload_with_cleanup(local_file, remote_file)

    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        """Upload a local directory tree into ``artifact_path``, files in parallel over the pool."""
        remote_root = self._full(artifact_path)
        dirs: list[str] = []
        files: list[tuple[str, str]] = []
        for root, _subdirs, names in os.walk(local_dir):
            rel = os.path.relpath(root, local_dir)
            remote = remote_root if rel == "." else posixpath.join(remote_root, *rel.split(os.sep))
            dirs.append(remote)
            files += [(os.path.join(root, n), posixpath.join(remote, n)) for n in sorted(names)]

        def make_dirs(conn: SftpConnection) -> None:
            for d in dirs:
                self._makedirs(conn.sftp, d)

        self._run(f"mkdir {remote_root}", make_dirs)
        if not files:
            return
        workers = min(len(files), get_pool(self._target).size)
        if workers == 1:
            for local, remote in files:
                self._upload_with_cleanup(local, remote)
            return
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlflow-sftp-upload") as ex:
            for future in [ex.submit(self._upload_with_cleanup, lf, rf) for lf, rf in files]:
                future.result()

    def log_artifact_from_stream(
        self, stream: BinaryIO, artifact_file_name: str, artifact_path: str | None = None
    ) -> None:
        """Write a blocking binary stream (a proxied upload's request body) straight to the SFTP host.

        Nothing is spooled locally: blocks go to a part file that is renamed into place at the end.
        """
        remote_file = self._stream_destination(artifact_file_name, artifact_path)
        self._upload_stream(stream_blocks(stream), remote_file)

    async def log_artifact_from_async_stream(
        self, chunks: AsyncIterable[bytes], artifact_file_name: str, artifact_path: str | None = None
    ) -> None:
        """As ``log_artifact_from_stream`` for an async chunk stream (MLflow's FastAPI route); the SFTP
        side runs in a thread of its own, so the event loop never waits on SSH."""

        def upload(blocks: Iterator[bytes]) -> None:
            self._upload_stream(blocks, self._stream_destination(artifact_file_name, artifact_path))

        await run_with_async_source(chunks, upload, artifact_file_name)

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        """Entries directly under ``path`` (files with sizes); [] for a file or a missing path."""
        full = self._full(path)

        def op(conn: SftpConnection) -> list[FileInfo]:
            sftp = conn.sftp
            st = self._stat(sftp, full)
            if st is None or not stat.S_ISDIR(st.st_mode or 0):
                return []
            with self._remote(full):
                entries = sftp.listdir_attr(full)
            max_age = stale_part_seconds()
            if max_age:  # abandoned uploads (local clock; the limit dwarfs any clock skew)
                remove_stale(sftp, full, entries, time.time(), max_age)
            infos = []
            for attr in entries:
                name = attr.filename
                if name in (".", "..") or name.endswith(PART_SUFFIX):
                    continue
                if stat.S_ISLNK(attr.st_mode or 0):
                    resolved = self._stat(sftp, posixpath.join(full, name))
                    if resolved is None:
                        continue  # dangling symlink
                    attr = resolved
                rel = posixpath.join(path, name) if path else name
                if stat.S_ISDIR(attr.st_mode or 0):
                    infos.append(FileInfo(rel, True, None))
                else:
                    infos.append(FileInfo(rel, False, attr.st_size))
            return sorted(infos, key=lambda f: f.path)

        return self._run(f"listing of {full}", op)

    def _is_directory(self, artifact_path: str) -> bool:
        full = self._full(artifact_path)

        def op(conn: SftpConnection) -> bool:
            st = self._stat(conn.sftp, full)
            return st is not None and stat.S_ISDIR(st.st_mode or 0)

        return self._run(f"stat of {full}", op)

    def _download_file(self, remote_file_path: str, local_path: str) -> None:
        remote = self._full(remote_file_path)

        def op(conn: SftpConnection) -> None:
            sftp = conn.sftp
            with self._remote(remote):
                with sftp.open(remote, "rb") as src:
                    size = src.stat().st_size or 0
                    src.MAX_REQUEST_SIZE = conn.read_chunk
                    _quiet_prefetch_thread(src)
                    src.prefetch(size, MAX_PREFETCH_REQUESTS)
                    got = 0
                    with open(local_path, "wb") as dst:
                        while got < size:
                            block = src.read(min(conn.read_chunk, size - got))
                            if not block:
                                break
                            dst.write(block)
                            got += len(block)
            if got != size:
                message = f"Download of {remote!r} is incomplete ({got} of {size} bytes)"
                # A session dropped mid-read can end the prefetched stream with a short read
                # instead of an error: that is a lost connection, and the download starts over.
                if not conn.is_alive():
                    raise SftpConnectionError(f"{message}: the connection was lost")
                raise SftpStoreError(message)

        self._run(f"download of {remote}", op)

    def delete_artifacts(self, artifact_path: str | None = None) -> None:
        """Delete a file or a directory tree (the whole root when ``artifact_path`` is empty)."""
        full = self._full(artifact_path)

        def remove_tree(sftp: paramiko.SFTPClient, path: str, mode: int) -> None:
            if stat.S_ISDIR(mode):
                with self._remote(path):
                    children = sftp.listdir_attr(path)
                for child in children:
                    remove_tree(sftp, posixpath.join(path, child.filename), child.st_mode or 0)
                with self._remote(path):
                    sftp.rmdir(path)
            else:
                try:
                    with self._remote(path):
                        sftp.remove(path)
                except SftpNotFoundError:
                    pass

        def op(conn: SftpConnection) -> None:
            try:
                with self._remote(full):
                    st = conn.sftp.lstat(full)
            except SftpNotFoundError:
                return
            remove_tree(conn.sftp, full, st.st_mode or 0)

        self._run(f"delete of {full}", op)
