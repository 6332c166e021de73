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


def make_db(path: Path, rows: int = 2000) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE metrics (k TEXT, v REAL)")
    conn.executemany("INSERT INTO metrics VALUES (?, ?)", [(f"m{i}", i * 0.5) for i in range(rows)])
    conn.commit()
    conn.close()


def run_db(*args: str, limit_fsize: int | None = None) -> tuple[int, dict]:
    def limit() -> None:
        import resource  # noqa: PLC0415

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_fsize, limit_fsize))

    out = subprocess.run(
        [sys.executable, db.__file__, *args],
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=limit if limit_fsize else None,  # noqa: PLW1509 (single-threaded test)
    )
    return out.returncode, json.loads(out.stdout.strip().splitlines()[-1])


def test_backup_finishes_while_a_writer_commits_every_few_ms(tmp_path: Path) -> None:
    """The stepwise copy restarted on every commit and never finished; one step does."""
    src = tmp_path / "mlflow.db"
    make_db(src, rows=200_000)
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, time, sys\n"
            "c = sqlite3.connect(sys.argv[1], timeout=30)\n"
            "while True:\n"
            "    c.execute('INSERT INTO metrics VALUES (\"w\", 1)'); c.commit(); time.sleep(0.005)\n",
            str(src),
        ]
    )
    try:
        rc, out = run_db("backup", "--db", str(src), "--dest", str(tmp_path / "b"), "--label", "scheduled")
    finally:
        writer.kill()
        writer.wait()
    assert rc == 0, out
    (backup,) = out["backups"]
    assert db.cmd_check(db.argparse.Namespace(db=backup["backup"]))["counts"]["metrics"] >= 200_000


def test_a_failed_backup_leaves_no_partial_file_and_exits_1(tmp_path: Path) -> None:
    """A full disk, as RLIMIT_FSIZE makes it: the error is reported and nothing half-written stays."""
    src, dest = tmp_path / "mlflow.db", tmp_path / "b"
    make_db(src, rows=50_000)
    rc, out = run_db("backup", "--db", str(src), "--dest", str(dest), limit_fsize=64 * 1024)
    assert rc == 1
    assert "error" in out
    assert list(dest.glob("*")) == []


def test_stale_partials_go_and_pruning_keeps_the_newest_good_backup(tmp_path: Path) -> None:
    src, dest = tmp_path / "mlflow.db", tmp_path / "b"
    make_db(src, rows=10)
    dest.mkdir()
    (dest / "mlflow-scheduled-1.db.partial").write_text("killed")
    old = [dest / "mlflow-scheduled-20200101T000000Z.db", dest / "mlflow-scheduled-20200102T000000Z.db"]
    for i, path in enumerate(old):
        path.write_text("old")
        os.utime(path, (1_577_836_800 + i, 1_577_836_800 + i))
    keep = dest / "mlflow-pre-upgrade-x-20200101T000000Z.db"
    keep.write_text("not scheduled")
    os.utime(keep, (1_577_836_800, 1_577_836_800))
    # A failing backup: the stale partial and the oldest scheduled backup still go, the newest stays.
    rc, _ = run_db(
        "backup",
        "--db",
        str(src),
        "--dest",
        str(dest),
        "--label",
        "scheduled",
        "--retention-days",
        "1",
        limit_fsize=1,
    )
    assert rc == 1
    assert sorted(p.name for p in dest.glob("*.db*")) == sorted([old[1].name, keep.name])
    rc, out = run_db(
        "backup", "--db", str(src), "--dest", str(dest), "--label", "scheduled", "--retention-days", "1"
    )
    assert rc == 0, out
    # Pruned before the new backup was written: the old one was still the newest good one then.
    assert out["pruned"] == []
    rc, out = run_db(
        "backup", "--db", str(src), "--dest", str(dest), "--label", "scheduled", "--retention-days", "1"
    )
    assert out["pruned"] == [str(old[1])]


def test_restore_replaces_the_content_and_refuses_a_bad_backup(tmp_path: Path) -> None:
    live, dest = tmp_path / "mlflow.db", tmp_path / "b"
    make_db(live, rows=10)
    rc, out = run_db("backup", "--db", str(live), "--dest", str(dest))
    assert rc == 0, out
    backup = out["backups"][0]["backup"]
    conn = sqlite3.connect(live)
    conn.execute("INSERT INTO metrics VALUES ('after', 1)")
    conn.commit()
    conn.close()
    rc, out = run_db("restore", "--backup", backup, "--db", str(live))
    assert rc == 0, out
    assert out["counts"]["metrics"] == 10
    assert out["journal_mode"] == "wal"
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    rc, out = run_db("restore", "--backup", str(bad), "--db", str(live))
    assert rc == 1
    assert db.cmd_check(db.argparse.Namespace(db=str(live)))["counts"]["metrics"] == 10
