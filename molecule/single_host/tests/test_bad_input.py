"""Bad input is refused in the preflight play, before any host changes.

Each case re-runs site.yml on the converged host with one bad value. The run must fail,
the message must name the variable, and no task may have changed anything (every host's
recap says changed=0 and no play after the preflight started).
"""

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import run_playbook

SCENARIO_DIR = Path(__file__).resolve().parent.parent
SITE = str(SCENARIO_DIR.parent.parent / "site.yml")

# (id, extra vars, text the failure must contain). The README's "Refused inputs" table
# lists the same cases.
CASES = [
    (
        "uri-three-slashes",
        {"mlflow_artifact_uri": "sftp:///mlops@192.168.1.70/home/mlops/mlflow/mlruns"},
        "sftp://mlops@192.168.1.70:22/home/mlops/mlflow/mlruns",
    ),
    (
        "uri-notes-command-line",
        {"mlflow_artifact_uri": "sftp:///mlops@192.168.1.70:/home/mlops/mlflow/mlruns"},
        "sftp://mlops@192.168.1.70:22/home/mlops/mlflow/mlruns",
    ),
    (
        "uri-empty-port",
        {"mlflow_artifact_uri": "sftp://mlops@192.168.1.70:/home/mlops/mlflow/mlruns"},
        "sftp://mlops@192.168.1.70:22/home/mlops/mlflow/mlruns",
    ),
    (
        "uri-tilde",
        {"mlflow_artifact_uri": "sftp://mlops@192.168.1.70:22/~/mlflow/mlruns"},
        "mlflow_artifact_uri",
    ),
    ("path-relative", {"mlflow_artifact_path": "mlflow/mlruns"}, "mlflow_artifact_path"),
    ("root-tilde", {"artifact_store_root": "~/mlflow/mlruns"}, "artifact_store_root"),
    ("root-relative", {"artifact_store_root": "mlflow/mlruns"}, "artifact_store_root"),
    ("root-dotdot", {"artifact_store_root": "/home/mlops/../mlruns"}, "artifact_store_root"),
    ("address-with-port", {"artifact_store_address": "192.168.1.70:22"}, "has a port in it"),
    ("root-trailing-space", {"artifact_store_root": "/home/mlops/mlflow/mlruns "}, "U+0020 SPACE"),
    ("root-zero-width-space", {"artifact_store_root": "/home/mlops/ml\u200bflow/mlruns"}, "U+200B"),
    ("mlflow-port-privileged", {"mlflow_port": 80}, "cannot listen below 1024"),
    ("mlflow-port-is-sshd", {"artifact_store_port": 2222, "mlflow_port": 2222}, "sshd already listens"),
    ("backup-timeout-zero", {"mlflow_backup_timeout_minutes": 0}, "mlflow_backup_timeout_minutes"),
    ("port-zero", {"artifact_store_port": 0}, "artifact_store_port"),
    ("port-too-big", {"artifact_store_port": 70000}, "artifact_store_port"),
    ("user-bad-name", {"mlops_account_name": "ML Ops"}, "mlops_account_name"),
    ("user-root", {"mlops_account_name": "root"}, "mlops_account_name"),
    (
        "key-type-without-plugin",
        {"mlflow_sftp_plugin_enabled": False, "mlops_ssh_key_type": "ed25519"},
        "mlops_ssh_key_type",
    ),
    ("artifacts-mode", {"mlflow_artifacts_mode": "s3"}, "mlflow_artifacts_mode"),
    (
        "auth-without-password-source",
        {"mlflow_auth_admin_password": "", "mlflow_credentials_dir": ""},
        "mlflow_auth_admin_password",
    ),
]


@pytest.fixture(scope="module")
def refused():
    """Every case's run, four at a time (they only read the host until they fail)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            name: pool.submit(run_playbook, SCENARIO_DIR, SITE, "-e", json.dumps(extra), check=False)
            for name, extra, _ in CASES
        }
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize(("name", "expected"), [(c[0], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_refused_before_any_change(refused, name, expected):
    result = refused[name]
    # Under Molecule's settings Ansible prints failed tasks on stderr.
    out, both = result.stdout, result.stdout + result.stderr
    assert result.returncode != 0, both[-3000:]
    assert expected in both, both[-3000:]
    # Only the preflight play ran, and it changed nothing.
    plays = re.findall(r"^PLAY \[(.+?)\]", out, flags=re.MULTILINE)
    assert plays and all(p.startswith("Preflight") for p in plays), plays
    recaps = re.findall(r"changed=(\d+)", out)
    assert recaps and set(recaps) == {"0"}, recaps
