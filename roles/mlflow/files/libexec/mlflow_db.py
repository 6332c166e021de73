#!/usr/bin/env python3
"""Database helper of the mlflow role (installed into MLFLOW_VENV/libexec, run by the venv's python).

Subcommands (each prints one JSON object):

  status --db PATH       schema revision of the database vs. the installed MLflow's head,
                         journal mode; "due" says whether `mlflow db upgrade` has work to do.
  backup --db PATH [--db PATH ...] --dest DIR --label LABEL [--retention-days N]
                         online backup with SQLite's backup API (consistent while the server
                         writes, WAL or not) to DIR/<name>-<LABEL>-<UTC time>.db, checked with
                         PRAGMA integrity_check; "scheduled" backups older than N days are deleted.
  wal --db PATH          switch the database to WAL journal mode (persists in the file).

Restore: see the role README (stop the service, put a backup in place, start it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import sqlite3
import sys
import time
from pathlib import Path

# The collection's plugins/module_utils/alembic_revisions.py: the role installs it beside this
# script (MLFLOW_VENV/libexec), the directory Python puts first on sys.path for a script.
from alembic_revisions import revisions


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
    target = dest_dir / f"{src.stem}-{label}-{stamp}.db"
    partial = target.with_suffix(".db.partial")
    source = _connect(str(src))
    try:
        dest = sqlite3.connect(str(partial))
        try:
            started = time.monotonic()
            source.backup(dest, pages=1024, sleep=0.01)
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
    return {
        "source": str(src),
        "backup": str(target),
        "bytes": target.stat().st_size,
        "seconds": round(took, 3),
    }


def cmd_backup(args: argparse.Namespace) -> dict:
    dest_dir = Path(args.dest)
    dest_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    done, skipped = [], []
    for db in args.db:
        src = Path(db)
        if not src.exists():
            skipped.append(str(src))
            continue
        done.append(_backup_one(src, dest_dir, args.label, stamp))
    pruned = []
    if args.retention_days and args.label == "scheduled":
        cutoff = time.time() - args.retention_days * 86400
        for old in sorted(dest_dir.glob("*-scheduled-*.db")):
            if old.stat().st_mtime < cutoff:
                old.unlink()
                pruned.append(str(old))
    return {"backups": done, "skipped_missing": skipped, "pruned": pruned}


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
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status")
    status.add_argument("--db", required=True)
    backup = sub.add_parser("backup")
    backup.add_argument("--db", action="append", required=True)
    backup.add_argument("--dest", required=True)
    backup.add_argument("--label", default="manual")
    backup.add_argument("--retention-days", type=int, default=0)
    wal = sub.add_parser("wal")
    wal.add_argument("--db", required=True)
    args = parser.parse_args(argv)
    handler = {"status": cmd_status, "backup": cmd_backup, "wal": cmd_wal}[args.command]
    try:
        result = handler(args)
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
