"""Unit tests of the artifact_store_state module: run as Ansible runs it, against temp files."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[2] / "library" / "artifact_store_state.py"


def run(tmp_path: Path, **args) -> dict:
    """The module as a process with an arguments file, the way AnsiballZ hands them over."""
    argfile = tmp_path / "args.json"
    argfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"_ansible_check_mode": True, **args}}))
    out = subprocess.run([sys.executable, str(LIBRARY), str(argfile)], capture_output=True, text=True, check=False)
    return json.loads(out.stdout)


def test_reports_files_and_changes_nothing(tmp_path):
    config = tmp_path / "sshd_config"
    config.write_text("Include /etc/ssh/sshd_config.d/*.conf\n")
    dropin = tmp_path / "50-drop-in.conf"
    dropin.write_bytes(b"PubkeyAuthentication yes\n")
    dropin.chmod(0o644)
    privsep = tmp_path / "privsep"
    privsep.mkdir(mode=0o755)
    privsep.chmod(0o755)
    def snapshot():
        return sorted((p.name, p.stat().st_mtime_ns, p.stat().st_mode) for p in tmp_path.iterdir() if p.name != "args.json")

    before = snapshot()
    res = run(
        tmp_path,
        packages=["dpkg", "no-such-package-mlops"],
        sshd_config=str(config),
        host_key=str(tmp_path / "no-host-key"),
        privsep_dir=str(privsep),
        files=[str(dropin), str(tmp_path / "missing.conf"), str(privsep)],
        service="no-such-unit-mlops.service",
        port=1,
    )
    assert res["changed"] is False and not res.get("failed"), res
    assert res["packages"] == {"dpkg": True, "no-such-package-mlops": False}
    assert res["sshd_config"] == "Include /etc/ssh/sshd_config.d/*.conf\n"
    assert res["host_key_exists"] is False
    assert res["privsep_dir"] == ["directory", "root", "root", "0755"]
    # Only regular files are reported, with the sha256 the role compares with the template's.
    assert res["files"] == {
        str(dropin): [hashlib.sha256(b"PubkeyAuthentication yes\n").hexdigest(), "root", "root", "0644"]
    }
    assert res["listening"] is False
    assert set(res["service"]) == {"UnitFileState", "ActiveState"}
    assert "rc" in res["sshd_effective"]
    assert snapshot() == before


def test_missing_everything(tmp_path):
    res = run(
        tmp_path,
        sshd_config=str(tmp_path / "absent"),
        host_key=str(tmp_path / "absent-key"),
        privsep_dir=str(tmp_path / "absent-dir"),
        service="no-such-unit-mlops.service",
        port=1,
    )
    assert not res.get("failed"), res
    assert res["sshd_config"] is None
    assert res["privsep_dir"] == ["missing", "", "", ""]
    assert res["files"] == {} and res["packages"] == {}


def test_owner_without_a_name_is_its_number(tmp_path):
    path = tmp_path / "orphan"
    path.write_text("x")
    os.chown(path, 54321, 54321)
    res = run(tmp_path, sshd_config=str(path), host_key=str(path), files=[str(path)], service="x", port=1)
    assert res["files"][str(path)][1:3] == ["54321", "54321"]
    assert res["host_key_exists"] is True

