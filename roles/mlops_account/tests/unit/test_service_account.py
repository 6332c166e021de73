"""Unit tests of the service_account module: its plan, the shadow read, and check mode as Ansible runs it."""

from __future__ import annotations

import importlib.util
import json
import pwd
import subprocess
import sys
from pathlib import Path

MODULE = Path(__file__).resolve().parents[4] / "plugins" / "modules" / "service_account.py"
spec = importlib.util.spec_from_file_location("service_account", MODULE)
account = importlib.util.module_from_spec(spec)
spec.loader.exec_module(account)

PARAMS = {"name": "mlops", "group": "mlops", "home": "/home/mlops", "shell": "/bin/bash"}
EXISTING = pwd.struct_passwd(("mlops", "x", 999, 999, "", "/home/mlops", "/bin/sh"))


def kinds(**state) -> list[str]:
    return [kind for _, kind in account.plan(params=PARAMS, **state)]


def test_nothing_to_do_for_an_account_in_place():
    assert kinds(group_exists=True, user=EXISTING, locked=False, home_exists=True) == []


def test_missing_group_and_user_are_created():
    assert kinds(group_exists=False, user=None, locked=False, home_exists=False) == ["group", "user"]


def test_existing_account_gets_only_a_missing_home_and_an_unlock():
    assert kinds(group_exists=True, user=EXISTING, locked=True, home_exists=False) == ["home", "unlock"]
    assert kinds(group_exists=True, user=EXISTING, locked=True, home_exists=True) == ["unlock"]


def test_locked_means_a_leading_bang(tmp_path: Path):
    shadow = tmp_path / "shadow"
    shadow.write_text("a:!:1::::::\nb:!*:1::::::\nc:*:1::::::\nd:$6$salt$hash:1::::::\ne:!$6$x:1::::::\n")
    found = {n: account.password_locked(n, str(shadow)) for n in "abcdef"}
    assert found == {"a": True, "b": True, "c": False, "d": False, "e": True, "f": False}


def run(tmp_path: Path, args: dict) -> dict:
    """The module as a process with an arguments file, the way AnsiballZ hands them over."""
    argfile = tmp_path / "args.json"
    argfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    argv = [sys.executable, str(MODULE), str(argfile)]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    return json.loads(out.stdout)


def test_check_mode_reports_a_new_account_and_creates_nothing(tmp_path: Path):
    home = tmp_path / "home-x"
    args = {
        "name": "no-such-user-mlops-x",
        "group": "no-such-group-mlops-x",
        "home": str(home),
        "shell": "/bin/sh",
        "_ansible_check_mode": True,
    }
    res = run(tmp_path, args)
    assert res["changed"] is True and not res.get("failed"), res
    assert res["actions"] == ["create group no-such-group-mlops-x", "create user no-such-user-mlops-x"]
    assert res["created"] is True
    assert not home.exists()


def test_an_existing_account_keeps_its_home_and_shell(tmp_path: Path):
    # root exists with its home: other home and shell options are not applied to it, and the
    # hash is never returned.
    args = {"name": "root", "group": "root", "home": "/elsewhere", "shell": "/bin/false"}
    res = run(tmp_path, {**args, "_ansible_check_mode": True})
    assert not res.get("failed"), res
    assert res["created"] is False
    assert res["changed"] is account.password_locked("root")
    assert all("home" not in a and "shell" not in a for a in res["actions"])
    assert "$" not in json.dumps(res)
