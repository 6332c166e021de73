"""Unit tests for roles/mlflow/files/libexec/mlflow_auth_sync.py against MLflow's real auth store.

The helper answers a re-run from the SQLite file (no MLflow import) and goes through MLflow's
SqlAlchemyStore for every change; these tests walk it through create, re-run, password change,
lost admin flag, and check the stored user with MLflow's own store each time.
Run: pytest roles/mlflow/tests/unit
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from _load import load

sync = load("files/libexec/mlflow_auth_sync.py")
pytest.importorskip("flask_wtf", reason="needs mlflow[auth] in this venv")


def run(db: Path, password: str) -> dict:
    # The password on stdin only: nothing of it in the environment or the arguments.
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_AUTH_ADMIN_PASSWORD", None)
    out = subprocess.run(
        [sys.executable, sync.__file__, "--db-uri", f"sqlite:///{db}", "--user", "admin"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        input=password,
    )
    assert password not in out.stdout + out.stderr
    return json.loads(out.stdout)


def authenticates(db: Path, password: str) -> bool:
    # Imported here, after the importorskip above: without mlflow[auth] the module is skipped.
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore  # noqa: PLC0415

    store = SqlAlchemyStore()
    store.init_db(f"sqlite:///{db}")
    return store.authenticate_user("admin", password) and store.get_user("admin").is_admin


def test_create_rerun_change_and_admin_flag(tmp_path: Path) -> None:
    db = tmp_path / "basic_auth.db"
    first, second = "first-password-123", "second-password-456"
    assert run(db, first) == {
        "changed": True,
        "created": True,
        "password_updated": False,
        "admin_flag_set": False,
    }
    assert authenticates(db, first)
    # The re-run is answered by the fast path, unchanged.
    assert sync.already_in_line(f"sqlite:///{db}", "admin", first)
    assert run(db, first)["changed"] is False
    # The inventory's password changed: the stored one follows, the old one stops working.
    assert not sync.already_in_line(f"sqlite:///{db}", "admin", second)
    assert run(db, second)["password_updated"] is True
    assert authenticates(db, second)
    assert not authenticates(db, first)
    # Somebody took the admin flag away: it is set again.
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE users SET is_admin = 0 WHERE username = 'admin'")
    assert not sync.already_in_line(f"sqlite:///{db}", "admin", second)
    assert run(db, second)["admin_flag_set"] is True
    assert run(db, second)["changed"] is False


def test_fast_path_declines_what_it_cannot_read(tmp_path: Path) -> None:
    assert not sync.already_in_line(f"sqlite:///{tmp_path}/missing.db", "admin", "x" * 12)
    assert not sync.already_in_line("postgresql://db/auth", "admin", "x" * 12)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE people (name TEXT)")
    assert not sync.already_in_line(f"sqlite:///{other}", "admin", "x" * 12)
