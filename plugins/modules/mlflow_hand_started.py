#!/usr/bin/python
"""Find (and on request stop) `mlflow server` processes that run outside the role's unit."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mlflow_hand_started
short_description: Find or stop MLflow servers started by hand (outside mlflow.service)
description:
  - Scans C(/proc) for C(mlflow server) processes (C(mlflow server ...) or C(python -m mlflow server ...))
    whose control group is not the role's unit: servers started from a shell with C(nohup) or C(setsid),
    as in the team's notes. Their workers (gunicorn/uvicorn children) are not listed separately.
  - Reports each one's PID, user, command line, working directory, port and the SQLite file its
    C(--backend-store-uri) resolves to (a relative C(sqlite:///x.db) is relative to the working directory).
  - With I(state=absent) it stops them and their descendants (SIGTERM, then SIGKILL after I(timeout)).
    Read-only with I(state=present) and in check mode.
options:
  state:
    description: C(present) only reports; C(absent) stops the servers found.
    type: str
    choices: [present, absent]
    default: present
  unit:
    description: The role's systemd unit; processes in its control group are not hand-started.
    type: str
    default: mlflow.service
  timeout:
    description: Seconds to wait after SIGTERM before SIGKILL.
    type: int
    default: 30
author: mlops-tracking
"""

EXAMPLES = r"""
- name: Find hand-started MLflow servers
  mlflow_hand_started:
  register: found

- name: Stop them
  mlflow_hand_started:
    state: absent
"""

RETURN = r"""
servers:
  description: The hand-started servers (before stopping them).
  type: list
  elements: dict
  returned: always
  sample:
    - pid: 640
      user: root
      cmdline: /root/venv/bin/mlflow server -h 0.0.0.0 --backend-store-uri sqlite:///home/mlops/mlflow/mlflow.db
      cwd: /
      port: 5000
      backend_store_uri: sqlite:///home/mlops/mlflow/mlflow.db
      sqlite_path: /home/mlops/mlflow/mlflow.db
stopped:
  description: PIDs that were signalled (main processes and descendants).
  type: list
  elements: int
  returned: always
"""

import os
import pwd
import re
import shlex
import signal
import time

from ansible.module_utils.basic import AnsibleModule


def _read(path: str, limit: int = 1 << 16) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(limit)
    except OSError:
        return None


def _processes() -> dict[int, list[str]]:
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        raw = _read(f"/proc/{entry}/cmdline")
        if raw:
            found[int(entry)] = [p.decode("utf-8", "replace") for p in raw.rstrip(b"\x00").split(b"\x00")]
    return found


def _status(pid: int, field: str) -> str:
    text = (_read(f"/proc/{pid}/status") or b"").decode("utf-8", "replace")
    match = re.search(rf"^{field}:\s+(\S+)", text, re.M)
    return match.group(1) if match else ""


def _server_args(argv: list[str]) -> list[str] | None:
    """Arguments after `mlflow server`, or None when ARGV is no MLflow server's main process."""
    for i, token in enumerate(argv[:-1]):
        # The mlflow script itself, the script run by an interpreter, or `python -m mlflow`.
        is_cli = (
            (i == 0 and os.path.basename(token) == "mlflow")
            or (i == 1 and os.path.basename(token) == "mlflow" and os.path.basename(argv[0]).startswith("python"))
            or (token == "mlflow" and i > 0 and argv[i - 1] == "-m")
        )
        if is_cli and argv[i + 1] == "server":
            return argv[i + 2:]
    return None


def _option(args: list[str], names: tuple[str, ...]) -> str | None:
    for i, token in enumerate(args):
        for name in names:
            if token == name and i + 1 < len(args):
                return args[i + 1]
            if name.startswith("--") and token.startswith(name + "="):
                return token.split("=", 1)[1]
    return None


def _environ(pid: int, key: str) -> str | None:
    for item in (_read(f"/proc/{pid}/environ", 1 << 20) or b"").split(b"\x00"):
        name, sep, value = item.partition(b"=")
        if sep and name.decode("utf-8", "replace") == key:
            return value.decode("utf-8", "replace")
    return None


def _sqlite_path(uri: str, cwd: str | None) -> str | None:
    """The file a sqlite:// URI opens: sqlite:///rel (three slashes) is relative, ////abs absolute."""
    if not uri.startswith("sqlite:///"):
        return None
    rest = uri[len("sqlite:///"):].split("?", 1)[0]
    if not rest or rest == ":memory:":
        return None
    if rest.startswith("/"):
        return os.path.normpath(rest)
    return os.path.normpath(os.path.join(cwd or "/", rest))


def _descendants(roots: list[int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid in _processes():
        ppid = _status(pid, "PPid")
        if ppid.isdigit():
            children.setdefault(int(ppid), []).append(pid)
    out, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def find_servers(unit: str) -> list[dict]:
    procs = _processes()
    servers = []
    for pid, argv in sorted(procs.items()):
        args = _server_args(argv)
        if args is None:
            continue
        # A child that is itself `mlflow server` (a wrapper re-exec) belongs to its parent.
        ppid = _status(pid, "PPid")
        if ppid.isdigit() and _server_args(procs.get(int(ppid), [])) is not None:
            continue
        cgroup = (_read(f"/proc/{pid}/cgroup") or b"").decode("utf-8", "replace")
        if f"/{unit}" in cgroup:
            continue
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            cwd = None
        uid = _status(pid, "Uid")
        try:
            user = pwd.getpwuid(int(uid)).pw_name
        except (KeyError, ValueError):
            user = uid
        backend = (_option(args, ("--backend-store-uri",)) or _environ(pid, "MLFLOW_BACKEND_STORE_URI")
                   or "sqlite:///mlflow.db")
        port = _option(args, ("--port", "-p")) or _environ(pid, "MLFLOW_PORT") or "5000"
        servers.append({
            "pid": pid,
            "user": user,
            "cmdline": shlex.join(argv),
            "cwd": cwd,
            "port": int(port) if port.isdigit() else port,
            # Credentials in a database URI are not reported.
            "backend_store_uri": re.sub(r"//[^/@]*@", "//***@", backend),
            "sqlite_path": _sqlite_path(backend, cwd),
        })
    return servers


def stop(pids: list[int], timeout: int) -> list[int]:
    targets = _descendants(pids)
    for pid in targets:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in targets if os.path.exists(f"/proc/{p}") and _status(p, "State") not in ("Z", "")]
        if not alive:
            break
        time.sleep(0.5)
    for pid in targets:
        if os.path.exists(f"/proc/{pid}") and _status(pid, "State") not in ("Z", ""):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return targets


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "unit": {"type": "str", "default": "mlflow.service"},
            "timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    servers = find_servers(module.params["unit"])
    stopped: list[int] = []
    changed = False
    if module.params["state"] == "absent" and servers:
        changed = True
        if not module.check_mode:
            stopped = stop([s["pid"] for s in servers], module.params["timeout"])
            left = find_servers(module.params["unit"])
            if left:
                module.fail_json(msg=f"could not stop {[s['pid'] for s in left]}", servers=servers, stopped=stopped)
    module.exit_json(changed=changed, servers=servers, stopped=stopped)


if __name__ == "__main__":
    main()
