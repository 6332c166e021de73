"""The doctor's reading of a hand-written sftp:// URI: what MLflow's stores really connect to.

The lexical split is the collection's one (module_utils/sftp_uri.py); this module words each
problem the way the doctor reports it (``(level, text)`` pairs) and proposes the corrected URI.
"""

from __future__ import annotations

import posixpath

from ansible_collections.mlops.mlflow.plugins.module_utils import sftp_uri


def _split_netloc(slashes: str, rest: str, problems: list) -> tuple[str, str, bool]:
    """(authority, path, whether the slashes lost the authority) after ``sftp:`` and SLASHES."""
    if len(slashes) >= 3:
        authority, path = sftp_uri.split_authority(rest, brackets=False)
        if "@" in authority or ":" in authority:
            problems.append(
                (
                    "error",
                    "three slashes after 'sftp:' make the host part empty, so "
                    f"'{authority}' became the first directory of the path: MLflow connects to localhost as "
                    f"the server's own user and writes below '/{rest}'",
                )
            )
            return authority, path or "/", True
        problems.append(
            (
                "error",
                "three slashes after 'sftp:' leave out user and host: MLflow connects to localhost as the "
                "server's own user",
            )
        )
        return "", "/" + rest, True
    authority, path = sftp_uri.split_authority(rest, brackets=False)
    if len(slashes) != 2:
        problems.append(("error", "'sftp:' must be followed by exactly two slashes"))
        if path == "/":  # "sftp:host/": no directory at all
            path = ""
    return authority, path, False


def _port_of(host: str, port_text: str | None, problems: list) -> tuple[int | None, str | None]:
    """(port or None, scp-style path or None) of the text after ``HOST:``; problems noted."""
    if port_text is None:
        if host:
            problems.append(("warn", "no port: the stores assume 22; write it out so every client agrees"))
        return None, None
    if port_text == "":
        problems.append(("error", f"empty port after '{host}:' (the URI reads host:/path, scp style)"))
        return None, None
    digits, scp_path = sftp_uri.split_port(port_text)
    if digits is not None and len(digits) <= 5:
        if scp_path is None and 0 < int(digits) < 65536:
            return int(digits), None
        if scp_path is not None:
            problems.append(("error", f"a second ':' after the port ({port_text}): scp-style path"))
            return int(digits), scp_path
    problems.append(
        (
            "error",
            f"'{host}:{port_text}' is scp style: the part after ':' must be a port number and the path "
            "must start with '/'",
        )
    )
    return None, port_text


def _fixed_path(path: str, home_guess: str, problems: list) -> str:
    """The absolute path MLflow should be given instead of PATH (problems noted)."""
    fixed_path = path
    if not path or path == "/":
        problems.append(("error", "no directory path after the host"))
        fixed_path = posixpath.join(home_guess, "mlflow/mlruns")
    elif path.startswith(("~", "/~")):
        problems.append(("error", "'~' is not expanded over SFTP: the path must be absolute"))
        tail = path.lstrip("/")[1:]
        named, _, rest_path = tail.partition("/")
        base = ("/root" if named == "root" else f"/home/{named}") if named else home_guess
        fixed_path = posixpath.join(base, rest_path) if rest_path else base
    elif not path.startswith("/"):
        problems.append(("error", f"relative path '{path}': MLflow needs an absolute path"))
        fixed_path = posixpath.join(home_guess, path)
    elif any(seg in (".", "..") for seg in path.split("/")):
        problems.append(("error", "'.' or '..' in the path"))
        fixed_path = posixpath.normpath(path)
    if len(fixed_path) > 1:
        fixed_path = fixed_path.rstrip("/")
    return fixed_path


def split_sftp_uri(uri, fallback_user):
    """Analyse an sftp:// URI the way MLflow's stores see it.

    Returns a dict: problems [(level, text)], user, host, port (int or None), path,
    corrected (the URI to use instead, or None), password (whether one is written in it).
    FALLBACK_USER is the local user MLflow runs as (the login when the URI names none).
    """
    result = {
        "problems": [],
        "user": None,
        "host": None,
        "port": None,
        "path": "",
        "corrected": None,
        "password": False,
    }
    problems = result["problems"]
    split = sftp_uri.split_scheme(uri.strip())
    if split is None:
        problems.append(("error", "not a URI"))
        return result
    scheme, slashes, rest = split
    if scheme != "sftp":
        problems.append(("error", f"scheme {scheme}: is not sftp:"))
    netloc, path, lost_netloc = _split_netloc(slashes, rest, problems)
    # user[:password]@host[:port][:path] (scp style leftovers land after a second colon)
    user, password, hostport = sftp_uri.split_userinfo(netloc)
    if password:
        result["password"] = True
        problems.append(("warn", "a password is written in the URI (visible in the process list)"))
    host, port_text, _problem = sftp_uri.split_hostport(hostport)
    if hostport.startswith("[") and "]" not in hostport:
        host = hostport
    port, scp_path = _port_of(host, port_text, problems)
    if scp_path is not None:
        path = scp_path + path
    if not host and not lost_netloc:
        problems.append(("error", "no host: MLflow connects to localhost"))
    if not user and host:
        problems.append(("warn", f"no user: MLflow logs in as the local user running it ({fallback_user})"))
    user = user or None
    home_guess = "/root" if (user or fallback_user) == "root" else f"/home/{user or fallback_user}"
    fixed_path = _fixed_path(path, home_guess, problems)
    result.update(user=user, host=host or None, port=port, path=fixed_path)
    if host:
        result["corrected"] = (
            f"sftp://{user or fallback_user}@{sftp_uri.format_host(host)}:{port or 22}{fixed_path}"
        )
    return result
