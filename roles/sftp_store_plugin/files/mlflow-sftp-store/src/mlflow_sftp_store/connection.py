"""SSH/SFTP connections: strict host-key checking, key authentication and a per-host pool."""

from __future__ import annotations

import atexit
import base64
import hashlib
import logging
import os
import re
import socket
import threading
from dataclasses import dataclass, field

import paramiko

from mlflow_sftp_store.config import Target, pool_size, stream_pool_size
from mlflow_sftp_store.errors import (
    SftpAuthenticationError,
    SftpConnectionError,
    SftpHostKeyError,
)

_logger = logging.getLogger(__name__)

# Receive window of our channels. Not larger on purpose: paramiko's channel buffer deletes consumed
# bytes from the front of an array (a memmove of everything still buffered) on every recv, so a big
# window makes downloads quadratic once the reader falls behind (16 MiB: 3-4x slower under load).
WINDOW_SIZE = 2 * 1024 * 1024
# Our receive packet size: lets the server answer a large READ in one SSH packet.
MAX_PACKET_SIZE = 256 * 1024
# SSH algorithm names a known_hosts key type can be negotiated as.
_HOSTKEY_ALGOS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}
# AES-GCM needs no separate MAC and costs paramiko ~25% less CPU per byte than aes-ctr + hmac.
_FAST_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
# SFTP request sizes. Every server takes 32 KiB; OpenSSH's sftp-server takes messages up to 256 KiB
# (reads up to 255 KiB since 8.6, 64 KiB before). Bigger requests mean fewer Python round trips.
SMALL_CHUNK = 32 * 1024
OPENSSH_CHUNK = 255 * 1024
OPENSSH_OLD_READ_CHUNK = 64 * 1024


def sftp_chunk_sizes(remote_version: str) -> tuple[int, int]:
    """(read, write) request sizes suited to the server named in the SSH banner."""
    match = re.search(r"OpenSSH_(\d+)\.(\d+)", remote_version or "")
    if not match:
        return SMALL_CHUNK, SMALL_CHUNK
    version = (int(match.group(1)), int(match.group(2)))
    read = OPENSSH_CHUNK if version >= (8, 6) else OPENSSH_OLD_READ_CHUNK
    return read, OPENSSH_CHUNK


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style ``SHA256:...`` fingerprint of a public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


# --------------------------------------------------------------------------- known_hosts


@dataclass
class KnownHosts:
    """The known_hosts keys that apply to one (host, port)."""

    files_read: list[str] = field(default_factory=list)
    files_missing: list[str] = field(default_factory=list)
    keys: list[paramiko.PKey] = field(default_factory=list)

    @property
    def key_types(self) -> list[str]:
        """Distinct key type names, e.g. ``ssh-ed25519``, in file order."""
        return list(dict.fromkeys(k.get_name() for k in self.keys))

    def describe_files(self) -> str:
        """Human readable list of the files that were consulted."""
        parts = [repr(f) for f in self.files_read]
        parts += [f"{f!r} (absent)" for f in self.files_missing]
        return ", ".join(parts) or "(none)"


def _pattern_matches(pattern: str, name: str) -> bool:
    if pattern.startswith("|1|"):
        try:
            return paramiko.HostKeys.hash_host(name, pattern) == pattern
        except Exception:
            return False
    if "*" in pattern or "?" in pattern:
        regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
        return re.fullmatch(regex, name, flags=re.IGNORECASE) is not None
    return pattern.lower() == name.lower()


def _line_matches(host_field: str, names: list[str]) -> bool:
    matched = False
    for pattern in host_field.split(","):
        negated = pattern.startswith("!")
        pattern = pattern[1:] if negated else pattern
        if any(_pattern_matches(pattern, n) for n in names):
            if negated:
                return False
            matched = True
    return matched


def load_known_hosts(target: Target) -> KnownHosts:
    """Collect the host keys for ``host`` and ``[host]:port`` (plain, hashed or wildcard lines)."""
    names: list[str] = []
    for name in target.host_key_names:
        names += [name, f"[{name}]:{target.port}"]
    result = KnownHosts()
    for path in target.known_hosts_files:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                lines = fh.readlines()
        except FileNotFoundError:
            result.files_missing.append(path)
            continue
        except OSError as exc:
            _logger.warning("Cannot read known_hosts file %s: %s", path, exc)
            result.files_missing.append(path)
            continue
        result.files_read.append(path)
        for line in lines:
            line = line.strip()
            # Markers (@cert-authority, @revoked) are not supported and are skipped.
            if not line or line.startswith("#") or line.startswith("@"):
                continue
            fields = line.split()
            if len(fields) < 3 or not _line_matches(fields[0], names):
                continue
            try:
                entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
            except Exception:
                entry = None
            if entry is not None and entry.key is not None:
                result.keys.append(entry.key)
    return result


def _prefer_fast_ciphers(transport: paramiko.Transport) -> None:
    options = transport.get_security_options()
    available = list(options.ciphers)
    fast = [c for c in _FAST_CIPHERS if c in available]
    options.ciphers = tuple(dict.fromkeys(fast + available))


def _prefer_known_types(transport: paramiko.Transport, known: KnownHosts) -> None:
    """Ask for the host key types known_hosts has first, as OpenSSH does."""
    if not known.keys:
        return
    options = transport.get_security_options()
    available = list(options.key_types)
    wanted: list[str] = []
    for ktype in known.key_types:
        wanted += [a for a in _HOSTKEY_ALGOS.get(ktype, (ktype,)) if a in available]
    if wanted:
        options.key_types = tuple(dict.fromkeys(wanted + available))


def verify_host_key(target: Target, server_key: paramiko.PKey, known: KnownHosts) -> None:
    """Raise SftpHostKeyError unless ``server_key`` is listed for this host in known_hosts."""
    blob = server_key.asbytes()
    if any(k.asbytes() == blob for k in known.keys):
        return
    names = ", ".join(f"{n!r} or '[{n}]:{target.port}'" for n in target.host_key_names)
    presented = f"{server_key.get_name()} {fingerprint(server_key)}"
    fix = (
        f"Verify the fingerprint out of band, then add the key, e.g. "
        f"'ssh-keyscan -p {target.port} -t {server_key.get_name()} {target.hostname} >> ~/.ssh/known_hosts'"
    )
    if not known.keys:
        raise SftpHostKeyError(
            f"Host key verification failed for {target.hostname} port {target.port}: the host is "
            f"unknown (no entry for {names} in known_hosts files {known.describe_files()}). "
            f"Server presented {presented}. {fix}. Keys are never added automatically."
        )
    same_type = [k for k in known.keys if k.get_name() == server_key.get_name()]
    if same_type:
        raise SftpHostKeyError(
            f"HOST KEY MISMATCH for {target.hostname} port {target.port}: the server presented "
            f"{presented}, but known_hosts files {known.describe_files()} list a different "
            f"{server_key.get_name()} key ({fingerprint(same_type[0])}) for {names}. This could be "
            f"a man-in-the-middle attack or a reinstalled host; fix known_hosts "
            f"(ssh-keygen -R '[{target.hostname}]:{target.port}') only after checking."
        )
    raise SftpHostKeyError(
        f"Host key verification failed for {target.hostname} port {target.port}: the server presented "
        f"{presented}, but known_hosts files {known.describe_files()} only list key types "
        f"{known.key_types} for {names}. {fix}."
    )


# --------------------------------------------------------------------------- authentication


def _is_encrypted(data: bytes) -> bool:
    if b"ENCRYPTED" in data:  # PEM: "Proc-Type: 4,ENCRYPTED" or PKCS#8 "ENCRYPTED PRIVATE KEY"
        return True
    match = re.search(
        rb"-----BEGIN OPENSSH PRIVATE KEY-----(.*?)-----END OPENSSH PRIVATE KEY-----", data, re.S
    )
    if not match:
        return False
    try:
        blob = base64.b64decode(b"".join(match.group(1).split()))
    except ValueError:
        return False
    magic = b"openssh-key-v1\x00"
    if not blob.startswith(magic) or len(blob) < len(magic) + 4:
        return False
    n = int.from_bytes(blob[len(magic) : len(magic) + 4], "big")
    cipher = blob[len(magic) + 4 : len(magic) + 4 + n]
    return cipher != b"none"


def load_private_key(path: str) -> tuple[paramiko.PKey | None, str | None]:
    """Load an unencrypted private key; return (key, None) or (None, reason it was not usable)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or type(exc).__name__})"
    if _is_encrypted(data):
        return None, (
            "is passphrase-protected; passphrase-protected keys are not supported "
            "(use an unencrypted key, or load the key into ssh-agent)"
        )
    try:
        return paramiko.PKey.from_path(path), None
    except (paramiko.PasswordRequiredException, TypeError):
        return None, "is passphrase-protected; passphrase-protected keys are not supported"
    except Exception as exc:  # unknown type, DSA, corrupt file...
        return None, f"could not be loaded as an RSA, ECDSA or Ed25519 key ({type(exc).__name__})"


def _try_key(transport: paramiko.Transport, username: str, key: paramiko.PKey) -> bool:
    try:
        transport.auth_publickey(username, key)
    except paramiko.BadAuthenticationType as exc:
        if "publickey" not in (exc.allowed_types or []):
            raise SftpAuthenticationError(
                f"The server does not accept public-key authentication for user {username!r} "
                f"(it allows: {exc.allowed_types})"
            ) from None
        return False
    except paramiko.AuthenticationException:
        return False
    except (paramiko.SSHException, EOFError, OSError):
        if transport.is_active():
            raise
        return False  # the server hung up (e.g. MaxAuthTries); the caller reports it
    return transport.is_authenticated()


def authenticate(transport: paramiko.Transport, target: Target) -> None:
    """Try key files, then ssh-agent, then a URI password; raise SftpAuthenticationError listing tries."""
    user = target.username
    tried: list[str] = []
    absent: list[str] = []

    def server_gone() -> None:
        if not transport.is_active():
            raise SftpAuthenticationError(
                f"SSH authentication as {user!r} to {target.hostname} port {target.port} failed: the "
                f"server closed the connection after {len(tried)} attempt(s) (MaxAuthTries?). "
                f"Tried: {'; '.join(tried) or 'nothing'}."
            )

    for path in target.identity_files:
        if not os.path.exists(path):
            absent.append(path)
            continue
        key, problem = load_private_key(path)
        if key is None:
            tried.append(f"{path} {problem}")
            continue
        if _try_key(transport, user, key):
            return
        tried.append(f"{path} ({key.get_name()} {fingerprint(key)}) was rejected")
        server_gone()

    if target.use_agent and os.environ.get("SSH_AUTH_SOCK"):
        agent = paramiko.Agent()
        try:
            for key in agent.get_keys():
                if _try_key(transport, user, key):
                    return
                tried.append(f"ssh-agent key {key.get_name()} {fingerprint(key)} was rejected")
                server_gone()
        finally:
            agent.close()
    elif target.use_agent:
        absent.append("ssh-agent (SSH_AUTH_SOCK not set)")

    if target.password:
        try:
            transport.auth_password(user, target.password)
            if transport.is_authenticated():
                return
        except paramiko.AuthenticationException:
            pass
        tried.append("the password from the URI was rejected")

    raise SftpAuthenticationError(
        f"SSH authentication as {user!r} to {target.hostname} port {target.port} failed. "
        f"Tried: {'; '.join(tried) or 'no usable key'}. "
        f"Not found: {', '.join(absent) or '-'}. "
        f"Provide an unencrypted key (~/.ssh/id_ed25519, id_ecdsa or id_rsa, or an IdentityFile for "
        f"Host {target.uri_host} in ~/.ssh/config) or a key in ssh-agent, whose public key is in "
        f"~{user}/.ssh/authorized_keys on the server."
    )


# --------------------------------------------------------------------------- connections


def _open_socket(target: Target) -> socket.socket:
    try:
        sock = socket.create_connection((target.hostname, target.port), timeout=target.connect_timeout)
    except OSError as exc:
        raise SftpConnectionError(
            f"Cannot connect to SSH server {target.hostname} port {target.port}: {exc}"
        ) from exc
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for opt, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, opt):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), value)
    return sock


class SftpConnection:
    """One authenticated SSH transport with one SFTP channel."""

    def __init__(self, target: Target) -> None:
        self.target = target
        sock = _open_socket(target)
        transport = paramiko.Transport(
            sock, default_window_size=WINDOW_SIZE, default_max_packet_size=MAX_PACKET_SIZE
        )
        try:
            transport.banner_timeout = target.connect_timeout
            transport.auth_timeout = target.connect_timeout
            known = load_known_hosts(target)
            _prefer_known_types(transport, known)
            _prefer_fast_ciphers(transport)
            try:
                transport.start_client(timeout=target.connect_timeout)
            except paramiko.SSHException as exc:
                if "host key" in str(exc).lower() and known.keys:
                    raise SftpHostKeyError(
                        f"Host key verification failed for {target.hostname} port {target.port}: the "
                        f"server offers none of the key types known_hosts lists ({known.key_types}) "
                        f"in {known.describe_files()}: {exc}"
                    ) from None
                raise
            verify_host_key(target, transport.get_remote_server_key(), known)
            authenticate(transport, target)
            if target.keepalive > 0:
                transport.set_keepalive(target.keepalive)
            sftp = paramiko.SFTPClient.from_transport(
                transport, window_size=WINDOW_SIZE, max_packet_size=MAX_PACKET_SIZE
            )
            if sftp is None:
                raise SftpConnectionError(f"Could not open an SFTP channel to {target.display}")
            channel = sftp.get_channel()
            if channel is not None:
                channel.settimeout(target.io_timeout)
        except BaseException:
            transport.close()
            raise
        self.transport = transport
        self.sftp = sftp
        self.read_chunk, self.write_chunk = sftp_chunk_sizes(transport.remote_version)

    def is_alive(self) -> bool:
        """False once the transport or the SFTP channel is known to be gone."""
        if not self.transport.is_active():
            return False
        channel = self.sftp.get_channel()
        return channel is not None and not channel.closed and not channel.eof_received

    def close(self) -> None:
        """Close the channel and the transport, ignoring errors."""
        for closer in (self.sftp.close, self.transport.close):
            try:
                closer()
            except Exception:
                pass


class ConnectionPool:
    """At most ``size`` connections to one (user, host, port); idle ones are reused (LIFO)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[SftpConnection] = []
        self._lock = threading.Lock()
        self._closed = False

    def acquire(self, target: Target) -> SftpConnection:
        """Take an idle live connection or open a new one; blocks while ``size`` are in use."""
        self._slots.acquire()
        try:
            while True:
                with self._lock:
                    conn = self._idle.pop() if self._idle else None
                if conn is None:
                    return SftpConnection(target)
                if conn.is_alive():
                    return conn
                _logger.info("Discarding dead SFTP connection to %s", target.display)
                conn.close()
        except BaseException:
            self._slots.release()
            raise

    def release(self, conn: SftpConnection, reusable: bool) -> None:
        """Give a connection back; broken ones are closed."""
        try:
            with self._lock:
                keep = reusable and not self._closed and conn.is_alive()
                if keep:
                    self._idle.append(conn)
            if not keep:
                conn.close()
        finally:
            self._slots.release()

    def idle_count(self) -> int:
        """Number of idle pooled connections."""
        with self._lock:
            return len(self._idle)

    def close(self) -> None:
        """Close idle connections now and busy ones when they are released."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


_pools: dict[tuple[str, str, int, bool], ConnectionPool] = {}
_pools_lock = threading.Lock()
_pools_pid = os.getpid()


def _forget_pools_after_fork() -> None:
    global _pools, _pools_lock, _pools_pid
    # Transports inherited from the parent are unusable in the child (no threads); drop them.
    _pools = {}
    _pools_lock = threading.Lock()
    _pools_pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools_after_fork)


def get_pool(target: Target, streams: bool = False) -> ConnectionPool:
    """The process-wide pool for ``target``'s (user, host, port); ``streams``: the separate one for
    streamed uploads (held as long as an HTTP client takes to send its body)."""
    if os.getpid() != _pools_pid:
        _forget_pools_after_fork()
    key = (*target.pool_key, streams)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = ConnectionPool(stream_pool_size() if streams else pool_size())
        return pool


def close_all_pools() -> None:
    """Close every pool's connections and forget the pools (tests, shutdown)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()


atexit.register(close_all_pools)

__all__ = [
    "ConnectionPool",
    "SftpConnection",
    "authenticate",
    "close_all_pools",
    "fingerprint",
    "get_pool",
    "load_known_hosts",
    "load_private_key",
    "verify_host_key",
]
