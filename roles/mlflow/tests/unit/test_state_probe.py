"""Unit tests for the re-run probes of tasks/probe.yml (__mlflow_state_py, __mlflow_venv_state_py in
vars/main.yml): what they report for files, directories, packages, units and the venv, so that the
role's gates compare against the right shapes. dpkg-query and systemctl are faked on PATH.
Run: pytest roles/mlflow/tests/unit
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from _load import ROLE

VARS = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


def run(script: str, *args: str, path_dir: Path | None = None) -> dict:
    env = dict(os.environ)
    if path_dir is not None:
        env["PATH"] = f"{path_dir}{os.pathsep}{env['PATH']}"
    out = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, check=True, env=env
    )
    return json.loads(out.stdout)


def fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


@pytest.fixture
def fakes(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # dpkg-query -W -f FORMAT NAME: installed, removed (config files left) or unknown.
    fake(
        bin_dir,
        "dpkg-query",
        'case "$4" in\n'
        "  sqlite3) printf 'ii \\n' ;;\n"
        "  python3-venv) printf 'rc \\n' ;;\n"
        "  multi) printf 'ii \\nrc \\n' ;;\n"
        "  *) echo \"dpkg-query: no packages found matching $4\" >&2; exit 1 ;;\n"
        "esac\n",
    )
    # systemctl show --property=... UNIT
    fake(
        bin_dir,
        "systemctl",
        'case "$3" in\n'
        "  mlflow.service) printf 'LoadState=loaded\\nUnitFileState=enabled\\n"
        "ActiveState=active\\nNeedDaemonReload=no\\n' ;;\n"
        "  *) printf 'LoadState=not-found\\nUnitFileState=\\nActiveState=inactive\\n"
        "NeedDaemonReload=no\\n' ;;\n"
        "esac\n",
    )
    return bin_dir


def test_files_report_sha256_owner_group_mode_and_leave_out_absent_paths(tmp_path: Path, fakes: Path):
    secret = tmp_path / "mlflow.env"
    secret.write_text("MLFLOW_AUTH_ADMIN_PASSWORD=very-secret\n")
    secret.chmod(0o600)
    subdir = tmp_path / "a-directory"
    subdir.mkdir()
    link = tmp_path / "link"
    link.symlink_to(secret)
    spec = {"files": {"config": [str(secret), str(tmp_path / "absent"), str(subdir), str(link)], "none": []}}
    state = run(VARS["__mlflow_state_py"], json.dumps(spec), path_dir=fakes)
    assert state["files"]["config"] == {
        str(secret): [
            hashlib.sha256(secret.read_bytes()).hexdigest(),
            ME,
            MY_GROUP,
            "0600",
        ],
        # Exists but is not a regular file: never equal to what a task expects, so it runs.
        str(subdir): ["?"],
        str(link): ["?"],
    }
    assert state["files"]["none"] == {}
    # The secret never leaves the host, only its checksum.
    assert "very-secret" not in json.dumps(state)


def test_directories_report_owner_group_mode(tmp_path: Path, fakes: Path):
    subdir = tmp_path / "state"
    subdir.mkdir()
    subdir.chmod(0o750)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    spec = {"dirs": [str(subdir), str(a_file), str(tmp_path / "absent")]}
    state = run(VARS["__mlflow_state_py"], json.dumps(spec), path_dir=fakes)
    assert state["dirs"] == {str(subdir): [ME, MY_GROUP, "0750"], str(a_file): ["?"]}


def test_packages_report_dpkg_status_abbrev(fakes: Path):
    spec = {"packages": ["sqlite3", "python3-venv", "unknown-package", "multi"]}
    state = run(VARS["__mlflow_state_py"], json.dumps(spec), path_dir=fakes)
    assert state["packages"] == {
        "sqlite3": "ii ",
        "python3-venv": "rc ",
        "unknown-package": "?",
        "multi": "?",
    }
    assert state["apt_cache_age"] is None or state["apt_cache_age"] >= 0


def test_units_report_the_properties_the_gates_compare(fakes: Path):
    spec = {"units": ["mlflow.service", "mlflow-backup.timer"]}
    state = run(VARS["__mlflow_state_py"], json.dumps(spec), path_dir=fakes)
    assert state["units"]["mlflow.service"] == VARS["__mlflow_unit_up"]
    assert state["units"]["mlflow-backup.timer"]["LoadState"] == "not-found"
    assert state["units"]["mlflow-backup.timer"] != VARS["__mlflow_unit_up"]


def test_venv_probe_reports_unmet_requirements_and_the_entry_points_distribution():
    pytest.importorskip("packaging")
    requirements = ["pytest>=1", "pytest==0.0.1", "surely-not-installed-dist==1.0", "not a requirement"]
    state = run(VARS["__mlflow_venv_state_py"], json.dumps(requirements), "no-such-entry-point")
    assert state == {
        "missing": ["pytest==0.0.1", "surely-not-installed-dist==1.0", "not a requirement"],
        "plugin_dist": "",
    }


def test_the_state_probe_runs_the_venv_look_with_the_venvs_python(tmp_path):
    """One module run answers for the venv too: its python runs __mlflow_venv_state_py."""
    pytest.importorskip("packaging")
    spec = {
        "venv": {
            "python": sys.executable,
            "script": VARS["__mlflow_venv_state_py"],
            "args": [json.dumps(["pytest>=1", "surely-not-installed-dist==1.0"]), "no-such-entry-point"],
        }
    }
    state = run(VARS["__mlflow_state_py"], json.dumps(spec))
    assert state["venv"] == {"missing": ["surely-not-installed-dist==1.0"], "plugin_dist": ""}
    # No venv yet (cold host): no answer, so the role installs and then looks again.
    spec["venv"]["python"] = str(tmp_path / "no-venv" / "bin" / "python")
    assert "venv" not in run(VARS["__mlflow_state_py"], json.dumps(spec))
