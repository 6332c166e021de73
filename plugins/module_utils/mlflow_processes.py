"""MLflow tracking servers as /proc shows them: command lines, options, owners, working directories.

Written once for the collection: the doctor (which server runs, with what configuration) and
mlflow_hand_started (which servers run outside the role's unit, and stopping them) both read
the processes through these functions. Linux only; nothing here writes or signals.
"""

from __future__ import annotations

import os
import re

# `mlflow server` options whose value names part of the configuration (short forms included).
SERVER_OPTIONS = {
    "--backend-store-uri": "backend",
    "--default-artifact-root": "artifact_root",
    "--artifacts-destination": "destination",
    "--host": "host",
    "-h": "host",
    "--port": "port",
    "-p": "port",
    "--app-name": "app_name",
    "--workers": "workers",
    "-w": "workers",
}
# Flags without a value: (configuration key, value it sets).
SERVER_FLAGS = {
    "--serve-artifacts": ("serve", True),
    "--no-serve-artifacts": ("serve", False),
    "--artifacts-only": ("artifacts_only", True),
}


def read_proc(path: str, limit: int = 1 << 16) -> bytes | None:
    """Up to LIMIT bytes of a /proc file (or any file); None when it cannot be read (process gone)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(limit)
    except OSError:
        return None


def iter_processes():
    """Yield (pid, argv) of every process with a command line (kernel threads have none)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        raw = read_proc(f"/proc/{entry}/cmdline")
        if raw:
            yield int(entry), [part.decode("utf-8", "replace") for part in raw.rstrip(b"\x00").split(b"\x00")]


def status_field(pid: int, field: str) -> str:
    """First word of FIELD in /proc/PID/status (``"State"`` gives e.g. ``"S"``); ``""`` if absent."""
    text = (read_proc(f"/proc/{pid}/status") or b"").decode("utf-8", "replace")
    match = re.search(rf"^{field}:\s+(\S+)", text, re.M)
    return match.group(1) if match else ""


def process_uid(pid: int) -> int:
    """Effective uid of PID, or -1 when it cannot be read."""
    text = (read_proc(f"/proc/{pid}/status") or b"").decode("utf-8", "replace")
    match = re.search(r"^Uid:\s+(\d+)\s+(\d+)", text, re.M)
    return int(match.group(2)) if match else -1


def process_ppid(pid: int) -> int:
    """Parent pid of PID (0 when it cannot be read)."""
    ppid = status_field(pid, "PPid")
    return int(ppid) if ppid.isdigit() else 0


def process_env(pid: int, wanted) -> dict[str, str]:
    """The variables of PID's environment whose names are in WANTED (reading it needs root or the owner)."""
    env = {}
    for item in (read_proc(f"/proc/{pid}/environ", 1 << 20) or b"").split(b"\x00"):
        key, sep, value = item.partition(b"=")
        name = key.decode("utf-8", "replace")
        if sep and name in wanted:
            env[name] = value.decode("utf-8", "replace")
    return env


def process_cwd(pid: int) -> str | None:
    """Working directory of PID, or None when it cannot be read."""
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


def process_cgroup(pid: int) -> str:
    """Text of /proc/PID/cgroup (names the systemd unit a process runs in); ``""`` if unreadable."""
    return (read_proc(f"/proc/{pid}/cgroup") or b"").decode("utf-8", "replace")


def server_args_index(argv: list[str]) -> int | None:
    """Index of the first argument after `mlflow server` in ARGV; None when ARGV is no server's main process.

    The mlflow script itself (``.../mlflow server``), the script run by an interpreter
    (``python3 .../mlflow server``, what a shebang gives) or ``python -m mlflow server``; a
    wrapper that only names it (``sudo ... mlflow server``, ``python train.py mlflow server``) is not.
    """
    for i, arg in enumerate(argv[:-1]):
        is_cli = (
            (i == 0 and os.path.basename(arg) == "mlflow")
            or (
                i == 1
                and os.path.basename(arg) == "mlflow"
                and os.path.basename(argv[0]).startswith("python")
            )
            or (arg == "mlflow" and i > 0 and argv[i - 1] == "-m")
        )
        if is_cli and argv[i + 1] == "server":
            return i + 2
    return None


def server_args(argv: list[str]) -> list[str] | None:
    """Arguments after `mlflow server`, or None when ARGV is no MLflow server's main process."""
    index = server_args_index(argv)
    return None if index is None else argv[index:]


def is_server_worker(argv: list[str]) -> bool:
    """Whether ARGV is a worker of an MLflow server (gunicorn/uvicorn serving ``mlflow.server``)."""
    return any(token.startswith("mlflow.server") or "mlflow.server." in token for token in argv)


def parse_server_args(args: list[str]) -> dict:
    """Configuration named by `mlflow server` ARGS: {backend, artifact_root, host, port, serve, ...}.

    ``--opt value`` and ``--opt=value`` are both read; a later option wins, as in click.
    """
    conf = {}
    i = 0
    while i < len(args):
        token = args[i]
        name, eq, value = token.partition("=")
        if name in SERVER_OPTIONS:
            if not eq:
                value = args[i + 1] if i + 1 < len(args) else ""
                i += 1
            conf[SERVER_OPTIONS[name]] = value
        elif token in SERVER_FLAGS:
            key, flag = SERVER_FLAGS[token]
            conf[key] = flag
        i += 1
    return conf


def sqlite_path(uri: str, cwd: str | None) -> str | None:
    """The file a sqlite:// URI opens: sqlite:///rel (three slashes) is relative to CWD, ////abs absolute."""
    if not uri.startswith("sqlite:///"):
        return None
    rest = uri[len("sqlite:///") :].split("?", 1)[0]
    if not rest or rest == ":memory:":
        return None
    if rest.startswith("/"):
        return os.path.normpath(rest)
    return os.path.normpath(os.path.join(cwd or "/", rest))


def descendants(roots: list[int]) -> list[int]:
    """ROOTS and every process below them (children, grandchildren, ...)."""
    children: dict[int, list[int]] = {}
    for pid, _argv in iter_processes():
        ppid = process_ppid(pid)
        if ppid:
            children.setdefault(ppid, []).append(pid)
    out, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out
