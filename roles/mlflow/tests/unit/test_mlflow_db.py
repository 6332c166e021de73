"""Unit tests for roles/mlflow/files/libexec/mlflow_db.py (schema status without importing MLflow).

The head revision is read from MLflow's migration files by pattern; these tests hold it against
alembic's own answer for the MLflow installed in this venv, and against a real SQLite database
that `mlflow db upgrade` migrated.
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

db = load("files/libexec/mlflow_db.py")


def test_heads_and_revisions_match_alembic() -> None:
    alembic_script = pytest.importorskip("alembic.script")
    utils = pytest.importorskip("mlflow.store.db.utils")
    script = alembic_script.ScriptDirectory.from_config(utils._get_alembic_config("sqlite:///unused.db"))
    heads, known = db._head_revisions()
    assert heads == set(script.get_heads())
    assert known == {rev.revision for rev in script.walk_revisions()}


def test_merge_revisions_and_annotations(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text('revision = "aaa"\ndown_revision = None\n')
    (tmp_path / "b.py").write_text("revision: str = 'bbb'\ndown_revision: str | None = 'aaa'\n")
    (tmp_path / "c.py").write_text('revision = "ccc"\ndown_revision = "aaa"\n')
    (tmp_path / "m.py").write_text('"""merge"""\nrevision = "mmm"\ndown_revision = ("bbb", "ccc")\n')
    (tmp_path / "d.py").write_text('revision = "ddd"\ndown_revision = "ccc"\n')
    (tmp_path / "__init__.py").write_text("")
    heads, known = db._head_revisions(tmp_path)
    assert heads == {"mmm", "ddd"}
    assert known == {"aaa", "bbb", "ccc", "mmm", "ddd"}


def test_no_revisions_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no alembic revisions"):
        db._head_revisions(tmp_path)


def _status(path: Path) -> dict:
    script = Path(db.__file__)
    out = subprocess.run(
        [sys.executable, str(script), "status", "--db", str(path)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


def test_status_of_a_new_and_a_migrated_database(tmp_path: Path) -> None:
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    if not mlflow_cli.exists():
        pytest.skip("no mlflow CLI in this venv")
    path = tmp_path / "mlflow.db"
    new = _status(path)
    assert new["due"] is True
    assert new["migration"] is False
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    subprocess.run(
        [str(mlflow_cli), "db", "upgrade", f"sqlite:///{path}"], check=True, capture_output=True, env=env
    )
    done = _status(path)
    assert done["revision"] == done["head"]
    assert done["due"] is False
    assert done["ahead"] is False
    # A revision this MLflow does not know (a newer MLflow migrated it): "ahead", no upgrade.
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'fffffffffff0'")
    ahead = _status(path)
    assert ahead["ahead"] is True
    assert ahead["due"] is False
