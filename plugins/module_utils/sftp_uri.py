"""Parse, validate and compose the sftp:// artifact URI of an MLflow tracking server.

Written once for the whole collection: the mlflow role's filters (plugins/filter/mlflow_uri.py)
validate the inventory's URI with :func:`check`, and the doctor (module_utils/doctor_uri.py)
explains what MLflow does with a hand-written one, both on top of the same lexical split
(:func:`split_scheme`, :func:`split_authority`, :func:`split_userinfo`, :func:`split_hostport`,
:func:`split_port`).

MLflow hands the URI to its SFTP artifact store (or the mlflow-sftp-store plugin) unchanged, and
the store fails late and obscurely on the forms people write by hand. :func:`check` refuses them
before anything is installed, and every refusal carries the corrected URI:

- ``sftp:///mlops@host/path``   (triple slash: the user and host end up in the path)
- ``sftp://mlops@host:/path``   (empty port after the colon)
- ``sftp://mlops@host/~/path``  (``~`` is not expanded over SFTP)
- ``sftp://mlops@host:mlflow/mlruns`` or an inventory path ``mlflow/mlruns`` (relative path)
- a missing user, a bad port, a password in the URI, query strings, other schemes;
- a host with a port in it (``192.168.1.70:22`` as the host), spaces and invisible characters
  (a trailing space, a zero-width space pasted from a chat) in the host or the path.

The good form is ``sftp://mlops@192.168.1.70:22/home/mlops/mlflow/mlruns``.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import unicodedata
from typing import Any

SCHEME = "sftp"
_URI_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(/*)(.*)$")
_PORT_RE = re.compile(r"([0-9]+)(?::(.*))?", re.S)
_USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$")
_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
_OTHER_SSH_SCHEMES = ("ssh", "scp", "sftp")


# ----------------------------------------------------------------------------- lexical split


def split_scheme(text: str) -> tuple[str, str, str] | None:
    """(scheme lower-cased, the slashes after ``scheme:``, the rest) of TEXT; None without a scheme."""
    match = _URI_RE.match(text)
    if not match:
        return None
    return match.group(1).lower(), match.group(2), match.group(3)


def split_authority(rest: str, brackets: bool = True) -> tuple[str, str]:
    """(authority, path) of what follows the slashes.

    The authority ends at the first ``/`` (outside IPv6 brackets unless BRACKETS is false, as
    MLflow's own split reads it); the path keeps its leading ``/`` (``""`` when there is none).
    """
    if rest.startswith("/"):
        return "", rest
    bracket_end = rest.find("]") if brackets and (rest.startswith("[") or "@[" in rest) else -1
    slash = rest.find("/", bracket_end + 1 if bracket_end >= 0 else 0)
    return (rest, "") if slash < 0 else (rest[:slash], rest[slash:])


def split_userinfo(authority: str) -> tuple[str, bool, str]:
    """(user, whether a password follows it, host[:port]) of an authority (user ``""`` if none)."""
    userinfo, _, hostport = authority.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    return user, bool(colon), hostport


def split_hostport(hostport: str) -> tuple[str, str | None, str | None]:
    """(host, text after its ``:`` or None, problem) of ``host[:port]`` or ``[v6]:port``.

    The problem is ``"unclosed"`` (a ``[`` without ``]``), ``"tail"`` (text after ``]`` that does
    not start with ``:``) or None.
    """
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            return hostport[1:], None, "unclosed"
        tail = hostport[end + 1 :]
        if tail.startswith(":"):
            return hostport[1:end], tail[1:], None
        return hostport[1:end], None, "tail" if tail else None
    if ":" in hostport:
        host, _, port_text = hostport.partition(":")
        return host, port_text, None
    return hostport, None, None


def split_port(port_text: str) -> tuple[str | None, str | None]:
    """(digits of the port or None, scp-style path after a second ``:`` or None) of PORT_TEXT.

    ``"22"`` gives ``("22", None)``, ``"22:rel/path"`` gives ``("22", "rel/path")``, and text
    that does not start as a number gives ``(None, None)``.
    """
    match = _PORT_RE.fullmatch(port_text)
    if not match:
        return None, None
    return match.group(1), match.group(2)


def format_host(host: str) -> str:
    """HOST as written in a URI: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


# ----------------------------------------------------------------------------- inventory check


def compose(host: Any, path: Any, user: Any = "mlops", port: Any = 22) -> str:
    """Compose ``sftp://USER@HOST:PORT/PATH`` from inventory parts (no validation)."""
    host_text = str(host).strip()
    if host_text.startswith("[") and host_text.endswith("]"):
        host_text = host_text[1:-1]
    path_text = str(path).strip()
    if not path_text.startswith("/"):
        # Keep a relative path visible to the checker (scp style), instead of silently
        # anchoring it at "/".
        return f"{SCHEME}://{user}@{format_host(host_text)}:{port}:{path_text}"
    return f"{SCHEME}://{user}@{format_host(host_text)}:{port}{path_text}"


def _split_scheme_part(text: str, problems: list[str], parts: dict[str, Any]) -> str:
    """Check the scheme and slashes of TEXT into PROBLEMS and PARTS; return what follows them."""
    split = split_scheme(text)
    if split is None:
        # No scheme at all: scp style "user@host:path" or a bare path.
        problems.append("missing 'sftp://' scheme")
        return text
    scheme, slashes, rest = split
    if scheme not in _OTHER_SSH_SCHEMES:
        problems.append(f"scheme '{scheme}://' is not sftp:// (this role stores artifacts over SFTP)")
        parts["foreign"] = True
    elif scheme != SCHEME:
        problems.append(f"scheme '{scheme}://' must be 'sftp://'")
    if len(slashes) == 3:
        problems.append(
            "three slashes after 'sftp:' put the user and host into the path (write sftp://USER@HOST:PORT/PATH)"
        )
    elif len(slashes) != 2:
        problems.append(f"'{scheme}:' must be followed by exactly two slashes")
    return rest


def _split_port_part(port_text: str, problems: list[str], parts: dict[str, Any]) -> str | None:
    """Check the text after the host's ``:`` into PROBLEMS and PARTS; return an scp-style path."""
    digits, scp_path = split_port(port_text)
    if port_text == "":
        problems.append("empty port after ':' (write the port, e.g. ':22')")
    elif digits is not None:  # "22", or compose()'s form "22:relative/path"
        parts["port_text"] = digits
        return scp_path
    elif port_text[0].isdigit() or port_text[0] in "+-":
        problems.append(f"bad port '{port_text}' (must be a number from 1 to 65535)")
    else:  # scp style "host:relative/path" or "host:~/path"
        return port_text
    return None


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
    rest = _split_scheme_part(text, problems, parts)
    for sep, what in (("#", "fragment"), ("?", "query string")):
        if sep in rest:
            problems.append(f"a {what} ('{sep}...') is not allowed")
            rest = rest.split(sep, 1)[0]
    authority, path = split_authority(rest)
    if "@" in authority:
        user, password, hostport = split_userinfo(authority)
        if password:
            parts["password"] = True
            problems.append(
                "a password in the URI is not allowed (the server authenticates with its SSH key)"
            )
        parts["user"] = user or None
    else:
        hostport = authority
    host, port_text, host_problem = split_hostport(hostport)
    if host_problem == "unclosed":
        problems.append("unclosed '[' in the host")
    elif host_problem == "tail":
        problems.append(f"unexpected text '{hostport[hostport.find(']') + 1 :]}' after the host")
    if port_text is not None:
        scp_path = _split_port_part(port_text, problems, parts)
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


def _given_text(value: Any, default_port: Any) -> str:
    """The URI text to check: VALUE itself, or the URI composed from a dict of inventory parts."""
    if isinstance(value, dict):
        given = compose(
            value.get("host", ""),
            value.get("path", ""),
            value.get("user") or "",
            value.get("port", default_port),
        )
        if not value.get("user"):
            given = given.replace("://@", "://", 1)
        return given
    return "" if value is None else str(value)


def invisible_characters(text: str) -> list[str]:
    """The spaces, control and invisible (format) characters in TEXT, each as 'U+XXXX NAME at N'."""
    found = []
    for index, char in enumerate(text):
        if char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Zs", "Zl", "Zp"):
            name = unicodedata.name(char, "CONTROL CHARACTER")
            found.append(f"U+{ord(char):04X} {name} at position {index + 1}")
    return found


def _host_problem(host: str) -> str | None:
    """Why HOST (brackets removed) is no host name or IP address, or None."""
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            name, _, port = host.rpartition(":")
            if port.isdigit() and ":" not in name:
                return f"the host '{host}' has a port in it: give the host alone, and the port on its own"
            return f"bad host '{host}'"
        return None
    if not _HOST_RE.match(host):
        return f"bad host '{host}'"
    return None


def _check_user_host_port(parts: dict[str, Any], default_user: str, default_port: Any) -> tuple:
    """(user, host, port, problems) of split PARTS, defaults filled in."""
    problems: list[str] = []
    user = parts["user"]
    if not user:
        problems.append(f"no user (write USER@ before the host, e.g. '{default_user}@')")
        user = default_user
    elif not _USER_RE.match(user):
        problems.append(f"bad user name '{user}'")
    host = parts["host"]
    if not host:
        problems.append("no host")
    elif _host_problem(host):
        problems.append(_host_problem(host))
    port: int | None = None
    if parts.get("port_text") is not None:
        port = int(parts["port_text"])
        if not 1 <= port <= 65535:
            problems.append(f"bad port '{parts['port_text']}' (must be a number from 1 to 65535)")
            port = None
    if port is None:
        port = int(default_port)
    return user, host, port, problems


def check(
    value: Any, default_user: str = "mlops", default_port: Any = 22, home: str | None = None
) -> dict[str, Any]:
    """Validate an sftp:// artifact URI (string) or its inventory parts (dict ``{host, port, path, user}``).

    Returns ``{ok, uri, error, suggestion, problems, user, host, port, path}``: ``uri`` is the
    normalised URI when ``ok`` (port always written), else the input; ``suggestion`` is the
    corrected URI (None when it cannot be guessed, e.g. no host at all).
    """
    given = _given_text(value, default_port)
    raw = value if isinstance(value, dict) else {"uri": given}
    invisible = [
        f"{key} has whitespace or an invisible character ({', '.join(found)}): retype it"
        for key in ("uri", "host", "path")
        if isinstance(raw.get(key), str) and (found := invisible_characters(raw[key]))
    ]
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
    parts = _split("".join(c for c in given if not invisible_characters(c)) if invisible else given)
    problems: list[str] = invisible + list(parts["problems"])
    if parts.get("foreign"):
        result["problems"] = problems
        result["error"] = "; ".join(problems)
        return result
    user, host, port, more = _check_user_host_port(parts, default_user, default_port)
    problems.extend(more)
    if host and re.fullmatch(r"[^:\[\]]+:[0-9]+", host):
        # "192.168.1.70:22" given as the host: the suggestion splits it.
        host, _, port_text = host.rpartition(":")
        port = port if parts.get("port_text") is not None else int(port_text)
    path, path_problems = _fix_path(parts["path"], user, home)
    problems.extend(path_problems)
    suggestion = compose(host, path, user, port) if host else None
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


def parts_of(uri: Any) -> dict[str, Any]:
    """The user, host, port and path of a valid URI (raises ValueError on an invalid one)."""
    checked = check(uri)
    if not checked["ok"]:
        raise ValueError(f"invalid sftp URI '{uri}': {checked['error']}")
    return {k: checked[k] for k in ("user", "host", "port", "path")}
