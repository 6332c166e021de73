"""MLflow servers started by hand: the `mlflow server` processes outside the role's unit, and stopping them.

Shared by the modules mlflow_hand_started_info (report) and mlflow_hand_started (stop); the /proc
reading itself is mlflow_processes'.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import signal
import time

from ansible_collections.mlops.mlflow.plugins.module_utils.mlflow_processes import (
    descendants,
    iter_processes,
    parse_server_args,
    process_cgroup,
    process_cwd,
    process_env,
    process_uid,
    server_args,
    sqlite_path,
    status_field,
)


def _is_main_server(procs: dict[int, list[str]], pid: int) -> bool:
    """Whether PID runs `mlflow server` itself, not as a child of another `mlflow server` (a re-exec)."""
    if server_args(procs[pid]) is None:
        return False
    ppid = status_field(pid, "PPid")
    return not (ppid.isdigit() and server_args(procs.get(int(ppid), [])) is not None)


def _describe(pid: int, argv: list[str]) -> dict:
    """What the module reports of the server PID: user, command line, cwd, port and database."""
    cwd = process_cwd(pid)
    uid = process_uid(pid)
    try:
        user = pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        user = str(uid)
    conf = parse_server_args(server_args(argv) or [])
    env = process_env(pid, {"MLFLOW_BACKEND_STORE_URI", "MLFLOW_PORT"})
    backend = conf.get("backend") or env.get("MLFLOW_BACKEND_STORE_URI") or "sqlite:///mlflow.db"
    port = conf.get("port") or env.get("MLFLOW_PORT") or "5000"
    return {
        "pid": pid,
        "user": user,
        "cmdline": shlex.join(argv),
        "cwd": cwd,
        "port": int(port) if port.isdigit() else port,
        # Credentials in a database URI are not reported.
        "backend_store_uri": re.sub(r"//[^/@]*@", "//***@", backend),
        "sqlite_path": sqlite_path(backend, cwd),
    }


def find_servers(unit: str) -> list[dict]:
    """The `mlflow server` processes that run outside UNIT's control group (started by hand)."""
    procs = dict(iter_processes())
    return [
        _describe(pid, argv)
        for pid, argv in sorted(procs.items())
        if _is_main_server(procs, pid) and f"/{unit}" not in process_cgroup(pid)
    ]


def stop(pids: list[int], timeout: int) -> list[int]:
    """SIGTERM PIDS and their descendants, SIGKILL what is left after TIMEOUT seconds; the PIDs signalled."""
    targets = descendants(pids)
    for pid in targets:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [
            p for p in targets if os.path.exists(f"/proc/{p}") and status_field(p, "State") not in ("Z", "")
        ]
        if not alive:
            break
        time.sleep(0.5)
    for pid in targets:
        if os.path.exists(f"/proc/{pid}") and status_field(pid, "State") not in ("Z", ""):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return targets
