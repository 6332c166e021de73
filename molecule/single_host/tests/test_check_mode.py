"""The README's preview: `ansible-playbook site.yml --check --diff` on the converged box.

The scenario's `check` step (molecule.yml) previews a whole first run on the fresh host; here the
same preview on the converged host must report nothing to change, on every host, and fail nothing.
"""

import re
from pathlib import Path

from conftest import run_playbook

SCENARIO_DIR = Path(__file__).resolve().parent.parent
SITE = str(SCENARIO_DIR.parent.parent / "site.yml")


def test_preview_of_a_converged_host_changes_nothing():
    result = run_playbook(SCENARIO_DIR, SITE, "--check", "--diff")
    recaps = re.findall(
        r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", result.stdout, re.M
    )
    assert recaps, result.stdout[-3000:]
    assert {(changed, unreachable, failed) for _, changed, unreachable, failed in recaps} == {
        ("0", "0", "0")
    }, result.stdout[-6000:]
