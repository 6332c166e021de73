"""Unit tests for roles/mlflow_database/files/mlflow_pg_dump.py with a stand-in pg_dump on PATH.

The real pg_dump against a real PostgreSQL is tested by molecule/database; here: file names, modes,
partial files, retention (the newest dump of each database is kept) and the exit code.
Run: pytest roles/mlflow_database/tests/unit
"""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "files" / "mlflow_pg_dump.py"
_spec = importlib.util.spec_from_file_location("mlflow_pg_dump", SCRIPT)
assert _spec and _spec.loader
dump_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dump_script)

# A pg_dump that writes its --dbname into its --file, or fails for a database called "broken".
FAKE_PG_DUMP = """#!/usr/bin/env python3
import sys
args = sys.argv[1:]
out = args[args.index("--file") + 1]
db = args[args.index("--dbname") + 1]
with open(out, "w") as fh:
    fh.write("dump of " + db)
if db == "broken":
    sys.stderr.write('pg_dump: error: database "broken" does not exist\\n')
    sys.exit(1)
"""


@pytest.fixture()
def dest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pg_dump"
    fake.write_text(FAKE_PG_DUMP)
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "dumps"
    out.mkdir()
    return out


def old_dump(dest: Path, db: str, days: int, label: str = "scheduled") -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S000000Z", time.gmtime(time.time() - days * 86400))
    path = dest / f"{db}.{label}.{stamp}.dump"
    path.write_text("old")
    then = time.time() - days * 86400
    os.utime(path, (then, then))
    return path


def run(dest: Path, *args: str, capsys: pytest.CaptureFixture) -> tuple[int, dict]:
    rc = dump_script.main(["--dest", str(dest), *args])
    return rc, json.loads(capsys.readouterr().out)


def test_one_private_dump_per_database(dest: Path, capsys: pytest.CaptureFixture) -> None:
    rc, report = run(dest, "--db", "mlflow", "--db", "mlflow_auth", capsys=capsys)
    assert rc == 0
    names = sorted(p.name for p in dest.iterdir())
    assert [n.split(".")[:2] for n in names] == [["mlflow", "scheduled"], ["mlflow_auth", "scheduled"]]
    assert all(dump_script.NAME.match(n) for n in names)
    for path in dest.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text() == f"dump of {path.name.split('.')[0]}"
    assert [d["ok"] for d in report["dumps"]] == [True, True]


def test_partials_go_and_old_dumps_are_pruned_but_each_newest_stays(dest: Path, capsys) -> None:
    (dest / "mlflow.scheduled.20261129T000000000000Z.dump.partial").write_text("killed")
    expired = old_dump(dest, "mlflow", 30)
    kept_recent = old_dump(dest, "mlflow", 2, label="pre-restore")
    only_auth = old_dump(dest, "mlflow_auth", 40)  # expired, but the newest of its database
    unrelated = dest / "notes.txt"
    unrelated.write_text("not a dump")
    rc, report = run(dest, "--db", "mlflow", "--retention-days", "7", capsys=capsys)
    assert rc == 0
    assert report["partials_removed"] == ["mlflow.scheduled.20261129T000000000000Z.dump.partial"]
    assert report["pruned"] == [expired.name]
    assert not expired.exists()
    assert kept_recent.exists() and only_auth.exists() and unrelated.exists()


def test_a_failed_dump_fails_leaves_no_partial_and_prunes_nothing_it_needs(dest: Path, capsys) -> None:
    last_good = old_dump(dest, "broken", 30)
    rc, report = run(dest, "--db", "broken", "--db", "mlflow", "--retention-days", "7", capsys=capsys)
    assert rc == 1
    assert report["dumps"][0]["ok"] is False
    assert "does not exist" in report["dumps"][0]["error"]
    assert report["dumps"][1]["ok"] is True
    assert last_good.exists()
    assert not list(dest.glob("*.partial"))


def test_a_bad_label_is_refused(dest: Path) -> None:
    with pytest.raises(SystemExit):
        dump_script.main(["--dest", str(dest), "--db", "mlflow", "--label", "../x"])
