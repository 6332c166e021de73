#!/usr/bin/python
"""Find (and on request stop) `mlflow server` processes that run outside the role's unit."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mlflow_hand_started
short_description: Find or stop MLflow servers started by hand (outside mlflow.service)
description:
  - Scans C(/proc) for C(mlflow server) processes (C(mlflow server ...) or C(python -m mlflow server ...))
    whose control group is not the role's unit (servers started from a shell with C(nohup) or C(setsid),
    as in the team's notes). Their workers (gunicorn/uvicorn children) are not listed separately.
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


def main() -> None:
    """Run the module: report (state=present) or stop (state=absent) the hand-started servers."""
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
                module.fail_json(
                    msg=f"could not stop {[s['pid'] for s in left]}", servers=servers, stopped=stopped
                )
    module.exit_json(changed=changed, servers=servers, stopped=stopped)


if __name__ == "__main__":
    main()
