#!/usr/bin/env python3
"""Database helper of the mlflow role (installed into MLFLOW_VENV/libexec, run by the venv's python).

Subcommands (each prints one JSON object):

  status --db PATH       schema revision of the database vs. the installed MLflow's head,
                         journal mode; "due" says whether `mlflow db upgrade` has work to do.
  backup --db PATH [--db PATH ...] --dest DIR --label LABEL [--retention-days N]
                         online backup with SQLite's backup API (consistent while the server
                         writes, WAL or not) to DIR/<name>-<LABEL>-<UTC time>.db, checked with
                         PRAGMA integrity_check. One backup at a time (a lock on DIR); what a
                         killed or failed run left (*.partial) is removed first; then "scheduled"
                         backups older than N days are pruned (never the newest good one of a
                         database), before anything is written. Any failure removes its own
                         partial file and exits 1.
  check --db PATH        integrity_check, schema revision and row counts of a database (a backup).
  restore --backup FILE --db PATH
                         replace the content of PATH with FILE's (SQLite's backup API, so a WAL
                         file of PATH cannot survive), after checking FILE; the service must be
                         stopped. Ends in WAL journal mode.
  wal --db PATH          switch the database to WAL journal mode (persists in the file).

playbooks/restore.yml drives check, a pre-restore backup, stop, restore, start and the read-back.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import importlib.util
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

# The collection's plugins/module_utils/alembic_revisions.py and helper_cli.py: the role installs
# them beside this script (MLFLOW_VENV/libexec), the directory Python puts first on sys.path for a script.
from alembic_revisions import revisions
from helper_cli import command_parser, print_json


def _connect(path: str, readonly: bool = False) -> sqlite3.Connection:
    """A connection to the SQLite database PATH (read-only on request) that waits up to 30 s for locks."""
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
    conn = sqlite3.connect(uri, uri=True, timeout=30)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def _migrations_dir() -> Path:
    """MLflow's alembic versions directory, found without importing MLflow (seconds of imports)."""
    spec = importlib.util.find_spec("mlflow")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("mlflow is not installed in this interpreter's environment")
    return Path(next(iter(spec.submodule_search_locations))) / "store" / "db_migrations" / "versions"


def _head_revisions(versions: Path | None = None) -> tuple[set[str], set[str]]:
    """The head revision(s) of the installed MLflow's migrations and every known revision.

    Read by the collection's alembic_revisions.py (copied beside this script), without executing
    the migration scripts; no revision at all is an error.
    """
    directory = versions or _migrations_dir()
    heads, known = revisions(directory)
    if not known:
        raise SystemExit(f"no alembic revisions found in {directory}")
    return heads, known


def cmd_status(args: argparse.Namespace) -> dict:
    path = Path(args.db)
    out: dict = {"db": str(path), "exists": path.exists(), "revision": None, "journal_mode": None}
    heads, known = _head_revisions()
    out["head"] = sorted(heads)[0] if len(heads) == 1 else sorted(heads)
    if out["exists"]:
        conn = _connect(str(path), readonly=True)
        try:
            out["journal_mode"] = conn.execute("PRAGMA journal_mode").fetchone()[0]
            has_table = conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name='alembic_version'"
            ).fetchone()
            if has_table:
                row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
                out["revision"] = row[0] if row else None
        finally:
            conn.close()
    revision = out["revision"]
    out["ahead"] = revision is not None and revision not in known
    out["due"] = (not out["exists"]) or revision is None or (revision not in heads and not out["ahead"])
    out["migration"] = out["exists"] and revision is not None and out["due"]
    return out


def _backup_one(src: Path, dest_dir: Path, label: str, stamp: str) -> dict:
    """Back up SRC into DEST_DIR in one step; the partial file is removed on any failure."""
    target = dest_dir / f"{src.stem}-{label}-{stamp}.db"
    partial = target.with_suffix(".db.partial")
    try:
        source = _connect(str(src))
        try:
            dest = sqlite3.connect(str(partial))
            try:
                started = time.monotonic()
                # All pages in one step: one read transaction, which a writer does not restart (a
                # stepwise copy starts over whenever the source changes, and under steady writes
                # never finishes). With WAL, writers go on meanwhile.
                source.backup(dest, pages=-1)
                check = dest.execute("PRAGMA integrity_check").fetchone()[0]
                if check != "ok":
                    raise RuntimeError(f"integrity_check of the backup of {src} answered {check!r}")
                # A backup is a plain rollback-journal file: one self-contained file to copy around.
                dest.execute("PRAGMA journal_mode = DELETE")
                took = time.monotonic() - started
            finally:
                dest.close()
        finally:
            source.close()
        os.chmod(partial, 0o640)
        partial.rename(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return {
        "source": str(src),
        "backup": str(target),
        "bytes": target.stat().st_size,
        "seconds": round(took, 3),
    }


def _prune(dest_dir: Path, sources: list[Path], days: int) -> list[str]:
    """Delete "scheduled" backups older than DAYS, keeping the newest good one of each source."""
    cutoff = time.time() - days * 86400
    pruned = []
    for src in sources:
        found = sorted(dest_dir.glob(f"{src.stem}-scheduled-*.db"), key=lambda p: p.stat().st_mtime)
        for old in found[:-1]:
            if old.stat().st_mtime < cutoff:
                old.unlink()
                pruned.append(str(old))
    return pruned


@contextlib.contextmanager
def _locked(dest_dir: Path):
    """Hold DEST_DIR's backup lock (one backup at a time); fails at once when another run holds it.

    The lock is on the directory itself: no lock file that one account (root, in the adoption)
    could create and another (the service account) then could not open.
    """
    fd = os.open(dest_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise RuntimeError(f"another backup into {dest_dir} is running") from exc
        yield
    finally:
        os.close(fd)


def cmd_backup(args: argparse.Namespace) -> dict:
    dest_dir = Path(args.dest)
    dest_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
    sources = [Path(db) for db in args.db]
    with _locked(dest_dir):
        # Left by a run that was killed (timeout, power): no other run writes while we hold the lock.
        stale = sorted(dest_dir.glob("*.db.partial"))
        for path in stale:
            path.unlink()
        # Pruning first frees the space the new backup needs (a full disk must not stop pruning).
        pruned = _prune(dest_dir, sources, args.retention_days) if args.retention_days else []
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        done, skipped = [], []
        for src in sources:
            if not src.exists():
                skipped.append(str(src))
                continue
            done.append(_backup_one(src, dest_dir, args.label, stamp))
    return {
        "backups": done,
        "skipped_missing": skipped,
        "pruned": pruned,
        "removed_partial": [str(p) for p in stale],
    }


def _summary(conn: sqlite3.Connection) -> dict:
    """integrity_check, alembic revision and row counts of the tables a restore is judged by."""
    out: dict = {"integrity": conn.execute("PRAGMA integrity_check").fetchone()[0]}
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    out["revision"] = None
    if "alembic_version" in tables:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        out["revision"] = row[0] if row else None
    counts = {}
    for table in ("experiments", "runs", "metrics", "params", "users"):
        if table in tables:
            counts[table] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
    out["counts"] = counts
    if "experiments" in tables:
        out["active_experiments"] = conn.execute(
            "SELECT count(*) FROM experiments WHERE lifecycle_stage = 'active'"
        ).fetchone()[0]
    if "runs" in tables:
        out["active_runs"] = conn.execute(
            "SELECT count(*) FROM runs WHERE lifecycle_stage = 'active'"
        ).fetchone()[0]
    return out


def cmd_check(args: argparse.Namespace) -> dict:
    path = Path(args.db)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    conn = _connect(str(path), readonly=True)
    try:
        out = {"db": str(path), **_summary(conn)}
    finally:
        conn.close()
    if out["integrity"] != "ok":
        raise RuntimeError(f"integrity_check of {path} answered {out['integrity']!r}")
    return out


def cmd_restore(args: argparse.Namespace) -> dict:
    backup = cmd_check(argparse.Namespace(db=args.backup))
    source = _connect(args.backup, readonly=True)
    try:
        dest = _connect(args.db)
        try:
            # The backup API replaces every page of the destination in one transaction, WAL included.
            source.backup(dest, pages=-1)
            mode = dest.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            restored = _summary(dest)
        finally:
            dest.close()
    finally:
        source.close()
    if restored["integrity"] != "ok" or restored["counts"] != backup["counts"]:
        raise RuntimeError(f"the restored {args.db} does not match {args.backup}: {restored} vs {backup}")
    return {"db": args.db, "backup": args.backup, "journal_mode": mode, **restored}


def cmd_wal(args: argparse.Namespace) -> dict:
    conn = _connect(args.db)
    try:
        before = conn.execute("PRAGMA journal_mode").fetchone()[0]
        after = before
        if before.lower() != "wal":
            after = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    finally:
        conn.close()
    if after.lower() != "wal":
        raise RuntimeError(f"could not switch {args.db} to WAL (journal_mode is {after})")
    return {"db": args.db, "before": before, "journal_mode": after, "changed": before.lower() != "wal"}


def main(argv: list[str] | None = None) -> int:
    parser, sub = command_parser(__doc__)
    status = sub.add_parser("status")
    status.add_argument("--db", required=True)
    backup = sub.add_parser("backup")
    backup.add_argument("--db", action="append", required=True)
    backup.add_argument("--dest", required=True)
    backup.add_argument("--label", default="manual")
    backup.add_argument("--retention-days", type=int, default=0)
    check = sub.add_parser("check")
    check.add_argument("--db", required=True)
    restore = sub.add_parser("restore")
    restore.add_argument("--backup", required=True)
    restore.add_argument("--db", required=True)
    wal = sub.add_parser("wal")
    wal.add_argument("--db", required=True)
    args = parser.parse_args(argv)
    # A stop (systemd's timeout, systemctl stop) unwinds like an error: the partial file goes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    handler = {
        "status": cmd_status,
        "backup": cmd_backup,
        "check": cmd_check,
        "restore": cmd_restore,
        "wal": cmd_wal,
    }[args.command]
    return print_json(lambda: (handler(args), 0), error_code=1)


if __name__ == "__main__":
    sys.exit(main())
