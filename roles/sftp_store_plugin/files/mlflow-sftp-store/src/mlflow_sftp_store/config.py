"""Settings from the environment, URI parsing and ~/.ssh/config resolution."""

from __future__ import annotations

import getpass
import os
import posixpath
import urllib.parse
from dataclasses import dataclass, field

import paramiko

from mlflow_sftp_store.errors import SftpConfigError, SftpUriError

ENV_POOL_SIZE = "MLFLOW_SFTP_POOL_SIZE"
ENV_STREAM_POOL_SIZE = "MLFLOW_SFTP_STREAM_POOL_SIZE"
ENV_KEEPALIVE = "MLFLOW_SFTP_KEEPALIVE"
ENV_CONNECT_TIMEOUT = "MLFLOW_SFTP_CONNECT_TIMEOUT"
ENV_IO_TIMEOUT = "MLFLOW_SFTP_IO_TIMEOUT"
ENV_IDENTITY_FILES = "MLFLOW_SFTP_IDENTITY_FILES"
ENV_KNOWN_HOSTS = "MLFLOW_SFTP_KNOWN_HOSTS"
ENV_STALE_PART_HOURS = "MLFLOW_SFTP_STALE_PART_HOURS"

DEFAULT_POOL_SIZE = 4
DEFAULT_STREAM_POOL_SIZE = 4
DEFAULT_KEEPALIVE = 15
DEFAULT_CONNECT_TIMEOUT = 15.0
DEFAULT_IO_TIMEOUT = 120.0
DEFAULT_STALE_PART_HOURS = 24.0
DEFAULT_KEY_NAMES = ("id_ed25519", "id_ecdsa", "id_rsa")
GLOBAL_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"


def _env_number(name: str, default: float, minimum: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SftpConfigError(f"{name}={raw!r} is not a number") from exc
    if value < minimum:
        raise SftpConfigError(f"{name}={raw!r} must be >= {minimum:g}")
    return value


def _env_paths(name: str) -> tuple[str, ...] | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    return tuple(os.path.expanduser(p) for p in raw.split(os.pathsep) if p.strip())


def pool_size() -> int:
    """Maximum number of SSH connections per (user, host, port) in this process."""
    return int(_env_number(ENV_POOL_SIZE, DEFAULT_POOL_SIZE, 1))


def stream_pool_size() -> int:
    """Maximum number of SSH connections per (user, host, port) for streamed uploads in this process.

    A streamed upload holds its connection as long as the HTTP client takes to send the body, so these
    come from a pool of their own: slow clients cannot starve listings and downloads.
    """
    return int(_env_number(ENV_STREAM_POOL_SIZE, DEFAULT_STREAM_POOL_SIZE, 1))


def stale_part_seconds() -> float:
    """Age (seconds since the last write) after which a part file of this plugin counts as abandoned.

    0 turns the sweeping off.
    """
    return _env_number(ENV_STALE_PART_HOURS, DEFAULT_STALE_PART_HOURS, 0) * 3600.0


def ssh_dir() -> str:
    """The local user's ~/.ssh directory (honours $HOME)."""
    return os.path.join(os.path.expanduser("~"), ".ssh")


@dataclass(frozen=True)
class ParsedUri:
    """The parts of an ``sftp://`` URI that matter for connecting."""

    host: str
    port: int | None
    username: str | None
    password: str | None = field(repr=False)
    path: str


def _home_guess(user: str | None) -> str:
    if user == "root":
        return "/root"
    return f"/home/{user or getpass.getuser()}"


def redact(uri: str) -> str:
    """The URI with any password replaced by ``***`` (for messages)."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.password is None:
        return uri
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)
    return urllib.parse.urlunparse(parsed._replace(netloc=netloc))


def parse_uri(uri: str) -> ParsedUri:
    """Split an ``sftp://[user[:password]@]host[:port]/absolute/path`` URI, refusing unusable forms."""
    parsed = urllib.parse.urlparse(uri)
    uri = redact(uri)
    if parsed.scheme != "sftp":
        raise SftpUriError(f"Not an sftp:// URI: {uri!r}")
    user = parsed.username or None
    host = parsed.hostname or "localhost"
    example_user = f"{user}@" if user else "user@"
    try:
        port = parsed.port
    except ValueError as exc:
        # scp style: sftp://user@host:mlruns or sftp://user@host:~/mlruns
        after_colon = parsed.netloc.rsplit(":", 1)[-1]
        rel = after_colon.lstrip("~/")
        good = f"sftp://{example_user}{host}:22{posixpath.join(_home_guess(user), rel or 'mlruns')}"
        raise SftpUriError(
            f"Invalid sftp artifact URI {uri!r}: the part after ':' must be a port number; "
            f"scp-style 'host:path' is not supported. Use an absolute path, e.g. {good}"
        ) from exc
    path = parsed.path
    shown_port = port or 22
    if not path or path == "":
        good = f"sftp://{example_user}{host}:{shown_port}{_home_guess(user)}/mlruns"
        raise SftpUriError(
            f"Invalid sftp artifact URI {uri!r}: it has no directory path. Give an absolute path, e.g. {good}"
        )
    parts = path.split("/")
    if len(parts) > 1 and parts[1].startswith("~"):
        tilde = parts[1]
        home = _home_guess(tilde[1:] or user)
        rest = "/".join(parts[2:])
        fixed = posixpath.join(home, rest) if rest else home
        good = f"sftp://{example_user}{host}:{shown_port}{fixed}"
        raise SftpUriError(
            f"Invalid sftp artifact URI {uri!r}: '~' is not expanded on the server; the path must be "
            f"absolute. Use e.g. {good}"
        )
    if any(p in (".", "..") for p in parts):
        rel = "/".join(p for p in parts if p not in ("", ".", ".."))
        fixed = posixpath.join(_home_guess(user), rel)
        good = f"sftp://{example_user}{host}:{shown_port}{fixed}"
        raise SftpUriError(
            f"Invalid sftp artifact URI {uri!r}: relative path components ('.' or '..') are not "
            f"allowed; the path must be absolute. Use e.g. {good}"
        )
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    return ParsedUri(host=host, port=port, username=user, password=parsed.password, path=path)


@dataclass(frozen=True)
class Target:
    """Everything needed to open one SSH connection, after applying ~/.ssh/config."""

    uri_host: str
    hostname: str
    port: int
    username: str
    password: str | None = field(repr=False)
    identity_files: tuple[str, ...]
    use_agent: bool
    known_hosts_files: tuple[str, ...]
    host_key_names: tuple[str, ...]
    keepalive: int
    connect_timeout: float
    io_timeout: float

    @property
    def pool_key(self) -> tuple[str, str, int]:
        """Connections are shared between repositories with the same (user, host, port)."""
        return (self.username, self.hostname, self.port)

    @property
    def display(self) -> str:
        """``user@host:port`` for messages."""
        return f"{self.username}@{self.hostname}:{self.port}"


def _load_ssh_config() -> dict:
    cfg_path = os.path.join(ssh_dir(), "config")
    if not os.path.isfile(cfg_path):
        return {}
    return {"path": cfg_path, "config": paramiko.SSHConfig.from_path(cfg_path)}


def _dedup(items: list[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return tuple(seen)


def resolve_target(parsed: ParsedUri) -> Target:
    """Apply ~/.ssh/config (HostName, Port, User, IdentityFile, ...) and env settings to a URI."""
    loaded = _load_ssh_config()
    opts: dict = loaded["config"].lookup(parsed.host) if loaded else {}

    hostname = opts.get("hostname", parsed.host) or parsed.host
    if parsed.port is not None:
        port = parsed.port
    else:
        port = int(opts.get("port", 22))
    username = parsed.username or opts.get("user") or getpass.getuser()

    identities_only = str(opts.get("identitiesonly", "no")).lower() == "yes"
    configured = [os.path.expanduser(p) for p in opts.get("identityfile", [])]
    env_keys = list(_env_paths(ENV_IDENTITY_FILES) or ())
    defaults = [os.path.join(ssh_dir(), name) for name in DEFAULT_KEY_NAMES]
    if identities_only:
        candidates = env_keys + (configured or defaults)
    else:
        candidates = env_keys + configured + defaults
    use_agent = not identities_only and str(opts.get("identityagent", "")).lower() != "none"

    known = _env_paths(ENV_KNOWN_HOSTS)
    if known is None:
        user_files = str(opts.get("userknownhostsfile", "")).split()
        if not user_files:
            user_files = [os.path.join(ssh_dir(), "known_hosts")]
        global_files = str(opts.get("globalknownhostsfile", "")).split() or [GLOBAL_KNOWN_HOSTS]
        known = tuple(os.path.expanduser(p) for p in user_files + global_files)

    alias = opts.get("hostkeyalias")
    host_key_names = (alias,) if alias else (hostname,)

    keepalive_default = float(opts.get("serveraliveinterval", DEFAULT_KEEPALIVE))
    connect_default = float(opts.get("connecttimeout", DEFAULT_CONNECT_TIMEOUT))
    return Target(
        uri_host=parsed.host,
        hostname=hostname,
        port=port,
        username=username,
        password=parsed.password,
        identity_files=_dedup(candidates),
        use_agent=use_agent,
        known_hosts_files=_dedup(list(known)),
        host_key_names=host_key_names,
        keepalive=int(_env_number(ENV_KEEPALIVE, keepalive_default, 0)),
        connect_timeout=_env_number(ENV_CONNECT_TIMEOUT, connect_default, 0.1),
        io_timeout=_env_number(ENV_IO_TIMEOUT, DEFAULT_IO_TIMEOUT, 1),
    )
