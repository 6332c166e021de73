"""Parse, validate and compose the sftp:// artifact URI of an MLflow tracking server.

MLflow hands the URI to its SFTP artifact store (or the mlflow-sftp-store plugin) unchanged, and
the store fails late and obscurely on the forms people write by hand. This filter refuses them
before anything is installed, and every refusal carries the corrected URI:

- ``sftp:///mlops@host/path``   (triple slash: the user and host end up in the path)
- ``sftp://mlops@host:/path``   (empty port after the colon)
- ``sftp://mlops@host/~/path``  (``~`` is not expanded over SFTP)
- ``sftp://mlops@host:mlflow/mlruns`` or an inventory path ``mlflow/mlruns`` (relative path)
- a missing user, a bad port, a password in the URI, query strings, other schemes.

The good form is ``sftp://mlops@192.168.1.70:22/home/mlops/mlflow/mlruns``.

Filters:

- ``uri_or_parts | mlflow_sftp_uri_check(default_user='mlops', default_port=22, home=None)``
  returns ``{ok, uri, error, suggestion, problems, user, host, port, path}``. ``uri_or_parts`` is
  either a URI string or a dict ``{host, port, path, user}`` (the inventory's parts). ``uri`` is
  the normalised URI when ``ok`` (port always written), else the input; ``suggestion`` is the
  corrected URI (or ``None`` when it cannot be guessed, e.g. no host at all).
- ``mlflow_sftp_uri_compose(host, path, user='mlops', port=22)`` builds the URI from parts.
- ``uri | mlflow_sftp_uri_parts`` returns ``{user, host, port, path}`` of a valid URI.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

SCHEME = "sftp"
_USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$")
_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
_OTHER_SSH_SCHEMES = ("ssh", "scp", "sftp")


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def mlflow_sftp_uri_compose(host: Any, path: Any, user: Any = "mlops", port: Any = 22) -> str:
    """Compose ``sftp://USER@HOST:PORT/PATH`` from inventory parts (no validation)."""
    host_text = str(host).strip()
    if host_text.startswith("[") and host_text.endswith("]"):
        host_text = host_text[1:-1]
    path_text = str(path).strip()
    if not path_text.startswith("/"):
        # Keep a relative path visible to the checker (scp style), instead of silently
        # anchoring it at "/".
        return f"{SCHEME}://{user}@{_format_host(host_text)}:{port}:{path_text}"
    return f"{SCHEME}://{user}@{_format_host(host_text)}:{port}{path_text}"


def _split(uri: str) -> dict[str, Any]:
    """Split URI text leniently into parts and collect the problems found while doing so."""
    problems: list[str] = []
    parts: dict[str, Any] = {"user": None, "host": None, "port": None, "path": "", "password": False}
    text = uri.strip()
    if text != uri:
        problems.append("leading or trailing whitespace")
    if re.search(r"\s", text):
        problems.append("whitespace inside the URI")
        text = re.sub(r"\s+", "", text)

    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):(/*)(.*)$", text)
    if match and "@" not in match.group(1):
        scheme, slashes, rest = match.group(1).lower(), match.group(2), match.group(3)
        if scheme not in _OTHER_SSH_SCHEMES:
            problems.append(f"scheme '{scheme}://' is not sftp:// (this role stores artifacts over SFTP)")
            parts["foreign"] = True
        elif scheme != SCHEME:
            problems.append(f"scheme '{scheme}://' must be 'sftp://'")
        if len(slashes) == 3:  # noqa: PLR2004
            problems.append(
                "three slashes after 'sftp:' put the user and host into the path "
                "(write sftp://USER@HOST:PORT/PATH)"
            )
        elif len(slashes) != 2:  # noqa: PLR2004
            problems.append(f"'{scheme}:' must be followed by exactly two slashes")
    else:
        # No scheme at all: scp style "user@host:path" or a bare path.
        rest = text
        problems.append("missing 'sftp://' scheme")

    for sep, what in (("#", "fragment"), ("?", "query string")):
        if sep in rest:
            problems.append(f"a {what} ('{sep}...') is not allowed")
            rest = rest.split(sep, 1)[0]

    # Authority: everything up to the first "/" (outside IPv6 brackets).
    if rest.startswith("/"):
        authority, path = "", rest
    else:
        bracket_end = rest.find("]") if rest.startswith("[") or "@[" in rest else -1
        slash = rest.find("/", bracket_end + 1 if bracket_end >= 0 else 0)
        authority, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])

    userinfo, _, hostport = authority.rpartition("@")
    if userinfo:
        user, colon, _password = userinfo.partition(":")
        if colon:
            parts["password"] = True
            problems.append(
                "a password in the URI is not allowed (the server authenticates with its SSH key)"
            )
        parts["user"] = user or None

    host, port_text = hostport, None
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            problems.append("unclosed '[' in the host")
            host = hostport[1:]
        else:
            host = hostport[1:end]
            tail = hostport[end + 1 :]
            if tail.startswith(":"):
                port_text = tail[1:]
            elif tail:
                problems.append(f"unexpected text '{tail}' after the host")
    elif ":" in hostport:
        host, _, port_text = hostport.partition(":")

    if port_text is not None:
        scp_path = None
        port_and_path = re.fullmatch(r"(\d+):(.*)", port_text)
        if port_text == "":
            problems.append("empty port after ':' (write the port, e.g. ':22')")
        elif re.fullmatch(r"\d+", port_text):
            parts["port_text"] = port_text
        elif port_and_path:  # compose() form "host:22:relative/path"
            parts["port_text"] = port_and_path.group(1)
            scp_path = port_and_path.group(2)
        elif port_text[0].isdigit() or port_text[0] in "+-":
            problems.append(f"bad port '{port_text}' (must be a number from 1 to 65535)")
        else:  # scp style "host:relative/path" or "host:~/path"
            scp_path = port_text
        if scp_path is not None:
            path = scp_path + path
    parts["host"] = host or None
    parts["path"] = path
    parts["problems"] = problems
    return parts


def _fix_path(path: str, user: str | None, home: str | None) -> tuple[str, list[str]]:
    """Return (corrected absolute path, problems) for a remote path."""
    problems: list[str] = []
    home_dir = home or f"/home/{user or 'mlops'}"
    segments = path.split("/")
    tilde_at = [i for i, s in enumerate(segments) if s.startswith("~")]
    if tilde_at:
        last = tilde_at[-1]
        tail = segments[last + 1 :]
        named = segments[last][1:]
        base = home_dir if not named or named == user else f"/home/{named}"
        problems.append(f"'{segments[last]}' is not expanded over SFTP: write the absolute path ('{base}')")
        path = posixpath.join(base, *tail) if tail else base
    elif path and not path.startswith("/"):
        problems.append(f"relative path '{path}' (SFTP paths must be absolute)")
        path = posixpath.join(home_dir, path)
    if not path:
        problems.append("no path after the host (write the absolute artifact root)")
        path = posixpath.join(home_dir, "mlflow", "mlruns")
    raw_segments = path.split("/")
    if any(s in (".", "..") for s in raw_segments):
        problems.append("'.' or '..' in the path")
    normalised = posixpath.normpath(path)
    if normalised.startswith("//"):
        normalised = "/" + normalised.lstrip("/")
    if normalised == "/":
        problems.append("the artifact root must not be '/'")
    return normalised, problems


def mlflow_sftp_uri_check(
    value: Any, default_user: str = "mlops", default_port: Any = 22, home: str | None = None
) -> dict[str, Any]:
    """Validate an sftp:// artifact URI (string) or its parts (dict); see the module docstring."""
    if isinstance(value, dict):
        given = mlflow_sftp_uri_compose(
            value.get("host", ""),
            value.get("path", ""),
            value.get("user") or "",
            value.get("port", default_port),
        )
        if not value.get("user"):
            given = given.replace("://@", "://", 1)
    elif value is None:
        given = ""
    else:
        given = str(value)

    result: dict[str, Any] = {
        "ok": False,
        "uri": given,
        "error": "",
        "suggestion": None,
        "problems": [],
        "user": None,
        "host": None,
        "port": None,
        "path": None,
    }
    if not given.strip():
        result["error"] = "the URI is empty"
        result["problems"] = [result["error"]]
        return result

    parts = _split(given)
    problems: list[str] = list(parts["problems"])
    if parts.get("foreign"):
        result["problems"] = problems
        result["error"] = "; ".join(problems)
        return result

    user = parts["user"]
    if not user:
        problems.append(f"no user (write USER@ before the host, e.g. '{default_user}@')")
        user = default_user
    elif not _USER_RE.match(user):
        problems.append(f"bad user name '{user}'")

    host = parts["host"]
    if not host:
        problems.append("no host")
    elif ":" not in host and not _HOST_RE.match(host):
        problems.append(f"bad host '{host}'")

    port: int | None = None
    if parts.get("port_text") is not None:
        port = int(parts["port_text"])
        if not 1 <= port <= 65535:  # noqa: PLR2004
            problems.append(f"bad port '{parts['port_text']}' (must be a number from 1 to 65535)")
            port = None
    if port is None:
        port = int(default_port)

    path, path_problems = _fix_path(parts["path"], user, home)
    problems.extend(path_problems)

    suggestion = None
    if host:
        suggestion = mlflow_sftp_uri_compose(host, path, user, port)
    result.update(user=user, host=host, port=port, path=path)
    if problems:
        result["problems"] = problems
        result["error"] = "; ".join(problems)
        result["suggestion"] = suggestion
    else:
        result["ok"] = True
        result["uri"] = suggestion
        result["suggestion"] = suggestion
    return result


def mlflow_sftp_uri_parts(uri: Any) -> dict[str, Any]:
    """The user, host, port and path of a valid URI (raises on an invalid one)."""
    checked = mlflow_sftp_uri_check(uri)
    if not checked["ok"]:
        raise ValueError(f"invalid sftp URI '{uri}': {checked['error']}")
    return {k: checked[k] for k in ("user", "host", "port", "path")}


class FilterModule:
    """Ansible filters for the mlflow role's artifact URI."""

    def filters(self) -> dict[str, Any]:
        return {
            "mlflow_sftp_uri_check": mlflow_sftp_uri_check,
            "mlflow_sftp_uri_compose": mlflow_sftp_uri_compose,
            "mlflow_sftp_uri_parts": mlflow_sftp_uri_parts,
        }
