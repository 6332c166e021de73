"""Unit test of the artifact_store_accounts module: run as Ansible runs it (arguments file)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ACCOUNTS = Path(__file__).resolve().parents[4] / "plugins" / "modules" / "artifact_store_accounts.py"


def test_accounts_match_getent(tmp_path):
    """artifact_store_accounts gives what ansible.builtin.getent's facts hold (passwd and group)."""
    argfile = tmp_path / "args.json"
    argfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"_ansible_check_mode": True}}))
    res = json.loads(
        subprocess.run(
            [sys.executable, str(ACCOUNTS), str(argfile)], capture_output=True, text=True, check=True
        ).stdout
    )
    assert res["changed"] is False
    for db in ("passwd", "group"):
        lines = subprocess.run(["getent", db], capture_output=True, text=True, check=True).stdout.splitlines()
        expected = {f[0]: ["x", *f[2:]] for f in (line.split(":") for line in lines)}
        assert res[db] == expected
