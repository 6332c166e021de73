"""The doctor's parsers (plugins/module_utils/doctor_*.py) on the controller: sftp:// URIs, SSH keys."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time

import pytest
from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_database import alembic_heads
from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_server import ServerDoctor
from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_ssh_keys import (
    private_key_info,
    ssh_config_lookup,
)
from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_uri import split_sftp_uri

GOOD = "sftp://mlops@192.168.1.70:22/home/mlops/mlflow/mlruns"


def problems(uri, user="root"):
    parsed = split_sftp_uri(uri, user)
    return parsed, " | ".join(f"{lvl}: {text}" for lvl, text in parsed["problems"])


def test_good_form_has_no_problem():
    parsed, text = problems(GOOD)
    assert text == ""
    assert (parsed["user"], parsed["host"], parsed["port"], parsed["path"]) == (
        "mlops",
        "192.168.1.70",
        22,
        "/home/mlops/mlflow/mlruns",
    )
    assert parsed["corrected"] == GOOD


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        # the user's notes
        ("sftp:///mlops@192.168.1.70/home/mlops/mlflow/mlruns", ["error: three slashes", "warn: no port"]),
        (
            "sftp:///mlops@192.168.1.70:/home/mlops/mlflow/mlruns",
            ["error: three slashes", "error: empty port"],
        ),
        ("sftp://mlops@192.168.1.70:/home/mlops/mlflow/mlruns", ["error: empty port"]),
        ("sftp://mlops@192.168.1.70/home/mlops/mlflow/mlruns", ["warn: no port"]),
        ("sftp://mlops@192.168.1.70:22/~/mlflow/mlruns", ["error: '~' is not expanded"]),
        (
            "sftp://mlops@192.168.1.70:mlflow/mlruns",
            ["error: '192.168.1.70:mlflow' is scp style", "error: relative path"],
        ),
        ("sftp://mlops@192.168.1.70:22/home/mlops/../mlops/mlflow/mlruns", ["error: '.' or '..'"]),
    ],
)
def test_broken_forms_are_named_and_corrected(uri, expected):
    parsed, text = problems(uri)
    for item in expected:
        assert item in text, text
    assert parsed["corrected"] == GOOD


def test_missing_user_and_password_in_uri():
    parsed, text = problems("sftp://:secret@192.168.1.70:22/srv/a", user="root")
    assert "warn: a password is written in the URI" in text
    parsed, text = problems("sftp://192.168.1.70:22/srv/a", user="root")
    assert "warn: no user: MLflow logs in as the local user running it (root)" in text
    assert parsed["corrected"] == "sftp://root@192.168.1.70:22/srv/a"


def test_three_slashes_without_user_or_host():
    parsed, text = problems("sftp:///home/mlops/mlflow/mlruns")
    assert "leave out user and host" in text
    assert parsed["host"] is None and parsed["corrected"] is None


@pytest.mark.parametrize(
    ("args", "kind", "bits", "encrypted"),
    [
        (["-t", "rsa", "-b", "3072", "-N", ""], "rsa", 3072, False),
        (["-t", "ed25519", "-N", ""], "ed25519", 256, False),
        (["-t", "ecdsa", "-b", "384", "-N", ""], "ecdsa", 384, False),
        (["-t", "ed25519", "-N", "a passphrase"], "ed25519", 256, True),
        (["-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "secret-pw"], "rsa", 2048, True),
    ],
)
def test_private_key_info(tmp_path, args, kind, bits, encrypted):
    key = tmp_path / "id_test"
    subprocess.run(["ssh-keygen", "-q", *args, "-f", str(key)], check=True)
    info = private_key_info(str(key))
    assert (info["type"], info["bits"], info["encrypted"]) == (kind, bits, encrypted)
    assert info["public"] == key.with_suffix(".pub").read_text().split()[1]
    assert private_key_info(str(key) + ".pub") is None


def test_ssh_config_lookup(tmp_path):
    cfg = tmp_path / "config"
    cfg.write_text(
        "# BEGIN ANSIBLE MANAGED BLOCK mlops_ssh\n"
        "Host 192.168.1.70\n"
        "    HostName 192.168.1.70\n"
        "    User mlops\n"
        "    Port 2222\n"
        "    IdentityFile /home/mlops/.ssh/id_mlflow_sftp\n"
        "    IdentitiesOnly yes\n"
        "# END ANSIBLE MANAGED BLOCK mlops_ssh\n"
        "Host *\n"
        "    IdentityFile ~/.ssh/id_rsa\n"
        "    Port 22\n"
    )
    found = ssh_config_lookup(str(cfg), "192.168.1.70")
    assert found["_entries"] == ["192.168.1.70"]
    assert found["port"] == "2222" and found["user"] == "mlops"
    assert found["identityfile"] == ["/home/mlops/.ssh/id_mlflow_sftp", "~/.ssh/id_rsa"]
    other = ssh_config_lookup(str(cfg), "10.0.0.1")
    assert other["_entries"] == [] and other["identityfile"] == ["~/.ssh/id_rsa"]


def test_alembic_heads(tmp_path):
    (tmp_path / "a.py").write_text('revision = "aaa"\ndown_revision = None\n')
    (tmp_path / "b.py").write_text("revision = 'bbb'\ndown_revision = 'aaa'\n")
    (tmp_path / "c.py").write_text('revision = "ccc"\ndown_revision = ("bbb", "aaa")\n')
    assert alembic_heads(str(tmp_path)) == {"ccc"}


class _Module:
    """Just enough of AnsibleModule for the database checks."""

    def __init__(self, **params):
        self.params = {
            "account": "root",
            "unit": "mlflow.service",
            "backup_dir": "",
            "backup_max_age_days": 2,
            "backup_timer": "",
            "min_free_percent": 0,
            "min_free_gib": 0,
            **params,
        }


def _database_findings(tmp_path, uri, cwd):
    server = ServerDoctor(_Module())
    server.conf = {"backend": uri}
    server.cwd = str(cwd)
    server.proc_user = "root"
    server.py = {"migrations": None, "mlflow": None}
    server.prefix = None
    server.check_database()
    return {(f["level"], f["check"]): f["message"] for f in server.r.findings}


def test_database_relative_uri_wal_schema_and_backups(tmp_path):
    db = tmp_path / "mlflow.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
    conn.execute("INSERT INTO alembic_version VALUES ('abc123')")
    conn.commit()
    conn.close()
    # sqlite:///mlflow.db started in tmp_path: relative, resolved against the working directory.
    found = _database_findings(tmp_path, "sqlite:///mlflow.db", tmp_path)
    assert f"it resolves to {db} now" in found[("error", "database_uri")]
    assert ("warn", "journal_mode") in found
    assert "schema revision abc123" in found[("ok", "schema")]
    assert "no backup of" in found[("warn", "backup")]
    # WAL (persisted in the header) and a fresh backup: ok; absolute URI: ok.
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups" / "mlflow-scheduled.db").write_text("x")
    found = _database_findings(tmp_path, f"sqlite:///{db}", "/")
    assert ("ok", "database_uri") in found and ("ok", "journal_mode") in found
    assert ("ok", "backup") in found
    old = time.time() - 3 * 86400
    os.utime(tmp_path / "backups" / "mlflow-scheduled.db", (old, old))
    found = _database_findings(tmp_path, f"sqlite:///{db}", "/")
    assert "older than 2 days" in found[("warn", "backup")]
    # A database that does not exist where the URI points.
    found = _database_findings(tmp_path, "sqlite:///other.db", tmp_path)
    assert "does not exist" in found[("error", "database")]
