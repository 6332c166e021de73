#!/usr/bin/python3
"""Dump MLflow's PostgreSQL databases with pg_dump, one custom-format file per database.

    mlflow_pg_dump.py --dest DIR --db mlflow --db mlflow_auth --label scheduled --retention-days 14

Run as the postgres user (peer authentication over the Unix socket). Each dump is written to
``DEST/<db>.<label>.<UTC time>.dump.partial`` and renamed when pg_dump succeeded, so a file
without ``.partial`` is always a complete dump. Before dumping, the partial files a killed run
left are removed; after dumping, dumps older than ``--retention-days`` are deleted, except the
newest of each database, which is always kept (a failed dump never costs the last good one).
One JSON line on stdout describes what was done; the exit code is non-zero when any database
could not be dumped (the others are still dumped).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

NAME = re.compile(
    r"^(?P<db>[a-z_][a-z0-9_]*)\.(?P<label>[A-Za-z0-9_-]+)\.(?P<stamp>[0-9]{8}T[0-9]{12}Z)\.dump$"
)


def dumps(dest: Path) -> list[tuple[Path, re.Match]]:
    """Complete dumps in DEST, as (path, name match)."""
    found = []
    for path in dest.iterdir():
        match = NAME.match(path.name)
        if match and path.is_file():
            found.append((path, match))
    return found


def prune(dest: Path, retention_days: int, now: float) -> list[str]:
    """Delete dumps older than RETENTION_DAYS (by modification time), keeping each database's newest."""
    newest: dict[str, Path] = {}
    for path, match in dumps(dest):
        db = match.group("db")
        if db not in newest or path.stat().st_mtime > newest[db].stat().st_mtime:
            newest[db] = path
    keep = set(newest.values())
    removed = []
    for path, _ in dumps(dest):
        if path not in keep and now - path.stat().st_mtime > retention_days * 86400:
            path.unlink()
            removed.append(path.name)
    return removed


def clean_partials(dest: Path) -> list[str]:
    removed = []
    for path in dest.glob("*.partial"):
        path.unlink()
        removed.append(path.name)
    return removed


def dump(db: str, dest: Path, label: str, port: str) -> dict:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    final = dest / f"{db}.{label}.{stamp}.dump"
    partial = final.with_name(final.name + ".partial")
    cmd = ["pg_dump", "--format=custom", "--port", port, "--file", str(partial), "--dbname", db]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        return {"db": db, "ok": False, "error": proc.stderr.strip()[-2000:]}
    fd = os.open(partial, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    partial.rename(final)
    dir_fd = os.open(dest, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return {
        "db": db,
        "ok": True,
        "dump": str(final),
        "bytes": final.stat().st_size,
        "seconds": round(time.monotonic() - started, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", required=True, type=Path)
    parser.add_argument("--db", action="append", required=True)
    parser.add_argument("--label", default="scheduled")
    parser.add_argument("--port", default="5432")
    parser.add_argument("--retention-days", type=int, default=0, help="0 keeps every dump")
    args = parser.parse_args(argv)
    if not re.match(r"^[A-Za-z0-9_-]+$", args.label):
        parser.error("--label: letters, digits, _ and - only")
    # Dumps hold every row of MLflow's databases: readable by postgres only, however this is started.
    os.umask(0o077)
    report: dict = {"partials_removed": clean_partials(args.dest)}
    report["dumps"] = [dump(db, args.dest, args.label, args.port) for db in args.db]
    # Pruned after dumping, so that the newest dump kept for a database is the one just made.
    report["pruned"] = prune(args.dest, args.retention_days, time.time()) if args.retention_days > 0 else []
    print(json.dumps(report), flush=True)
    failed = [d for d in report["dumps"] if not d["ok"]]
    for item in failed:
        print(f"pg_dump of {item['db']} failed: {item['error']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
