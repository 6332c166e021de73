"""Runs on a bench host (``python3 - ROOT ACTION [PID...]`` on stdin): a process tree's memory.

ACTION ``measure``: prints the tree under ROOT as JSON: processes, RSS (sum), PSS (sum), live pids.
ACTION ``kill``: the same, after sending SIGTERM to the whole tree.
ACTION ``kill9``: SIGKILL to the PIDs given, prints ``{}``.
Standard library only: it runs with the host's own python3.
"""

from __future__ import annotations

import json
import os
import signal
import sys


def kill_all(pids: list[int], sig: int) -> None:
    """Send sig to every pid, ignoring the ones already gone."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def children_of() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(d))
    return children


def tree_of(root: int) -> list[int]:
    """ROOT and all its descendants."""
    children = children_of()
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def kb(path: str, field: str) -> int:
    """A ``Field: N kB`` value of a /proc status-like file, 0 if absent."""
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> int:
    """Measure (and with ``kill``, terminate) the tree, or SIGKILL the pids given (``kill9``)."""
    root, action = int(sys.argv[1]), sys.argv[2]
    if action == "kill9":
        kill_all([int(p) for p in sys.argv[3:]], signal.SIGKILL)
        print("{}")
        return 0
    tree = tree_of(root)
    if action == "kill":
        kill_all(tree, signal.SIGTERM)
    rss = sum(kb(f"/proc/{p}/status", "VmRSS") for p in tree)
    pss = sum(kb(f"/proc/{p}/smaps_rollup", "Pss") for p in tree)
    alive = [p for p in tree if os.path.exists(f"/proc/{p}")]
    report = {"processes": len(tree), "rss_mb": round(rss / 1024, 1), "pss_mb": round(pss / 1024, 1)}
    print(json.dumps({**report, "pids": alive}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
