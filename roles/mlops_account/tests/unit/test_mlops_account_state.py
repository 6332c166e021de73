"""Unit tests of the mlops_account_state module: run as Ansible runs it, against this machine."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parents[2] / "library" / "mlops_account_state.py"
spec = importlib.util.spec_from_file_location("mlops_account_state", LIBRARY)
state = importlib.util.module_from_spec(spec)
spec.loader.exec_module(state)


def run(tmp_path: Path, **args) -> dict:
    """The module as a process with an arguments file, the way AnsiballZ hands them over."""
    argfile = tmp_path / "args.json"
    argfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"_ansible_check_mode": True, **args}}))
    out = subprocess.run([sys.executable, str(LIBRARY), str(argfile)], capture_output=True, text=True, check=False)
    return json.loads(out.stdout)


def test_existing_user_group_and_packages(tmp_path):
    res = run(tmp_path, name="root", group="root", packages=["dpkg", "no-such-package-mlops"])
    assert res["changed"] is False and not res.get("failed")
    assert res["user"] == {"name": "root", "uid": 0, "gid": 0, "home": "/root", "shell": res["user"]["shell"]}
    assert res["group"] == {"name": "root", "gid": 0}
    assert res["home_exists"] is True
    assert res["packages"] == {"dpkg": True, "no-such-package-mlops": False}


def test_missing_user_and_group(tmp_path):
    res = run(tmp_path, name="no-such-user-mlops", group="no-such-group-mlops")
    assert res["user"] is None and res["group"] is None
    assert res["locked"] is False and res["home_exists"] is False
    assert res["packages"] == {}


@pytest.mark.parametrize(
    ("field", "locked"), [("!", True), ("!*", True), ("!$6$abc", True), ("*", False), ("$6$abc", False), ("", False)]
)
def test_locked_reads_only_the_first_character(tmp_path, field, locked):
    shadow = tmp_path / "shadow"
    shadow.write_text(f"root:*:19000:0:99999:7:::\nmlops:{field}:19000:0:99999:7:::\n")
    assert state.password_locked("mlops", str(shadow)) is locked
    assert state.password_locked("absent", str(shadow)) is False


def test_no_hash_in_the_output(tmp_path):
    res = run(tmp_path, name="root", group="root")
    assert "$" not in json.dumps({k: v for k, v in res.items() if k != "invocation"})
