"""Helpers shared by this scenario's playbook-running tests."""

from __future__ import annotations

import re
from pathlib import Path

SCENARIO_DIR = Path(__file__).resolve().parent.parent
DEFAULT_HOST = "artifact-store-default"
DEFAULT_ROOT = "/home/mlops/mlflow/mlruns"
REPORT = re.compile(r"(\d+) dirs, (\d+) files checked; fixed (\d+) dirs, (\d+) files")


def recap(output: str, host: str) -> dict[str, int]:
    """The PLAY RECAP counters of HOST (the last play that mentions it)."""
    lines = [line for line in output.splitlines() if re.match(rf"\s*{re.escape(host)}\s+:\s+ok=", line)]
    assert lines, f"no recap for {host}:\n{output[-3000:]}"
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", lines[-1])}


def repair_report(output: str) -> tuple[int, int, int, int]:
    """(dirs, files, dirs fixed, files fixed) from the role's 'Tree | what the repair ...' task."""
    found = REPORT.findall(output)
    assert len(found) == 1, f"expected one repair report:\n{output[-3000:]}"
    dirs, files, dirs_fixed, files_fixed = (int(n) for n in found[0])
    return dirs, files, dirs_fixed, files_fixed


def snapshot(host) -> str:
    """What the role could touch on the host: owners, modes, sizes and mtimes, sshd's ports."""
    return host.check_output(
        "find /home/mlops /srv /etc/ssh /run/sshd -printf '%p %u %g %m %s %T@\\n' | sort; "
        "stat -c '%n %U %G %a %s %Y' /etc/passwd /etc/group /etc/shadow /var/lib/dpkg/status; "
        "ss -Hltn | sort"
    )
