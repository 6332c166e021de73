"""The backend store: an SQLite file, its owner, journal mode and schema revision."""

from __future__ import annotations

import os
import re
import sqlite3
import urllib.parse

from ansible_collections.mlops.mlflow.plugins.module_utils.alembic_revisions import revisions
from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_host import (
    Identity,
    disk_check,
    human_bytes,
    lstat,
    owner_text,
    read_bytes,
    redact_uri,
    user_name,
)


def alembic_heads(versions_dir):
    """Head revision(s) of the alembic scripts in VERSIONS_DIR (empty when unreadable)."""
    return revisions(versions_dir)[0]


class DatabaseChecks:
    """Checks of the backend store (SQLite only)."""

    def check_database(self):
        """Check the backend store: URI, file, owner, journal mode, schema, free space and backups."""
        path = self._database_path()
        if path is None:
            return
        self.discovered["db_path"] = path
        st = lstat(path)
        if st is None:
            self.r.error(
                "database",
                f"database file {path} does not exist",
                "the URI points elsewhere than intended, or the database was lost: restore the latest "
                "backup, or `mlflow db upgrade` a new one",
            )
            return
        self._database_owner(path, st)
        self._journal_mode(path)
        self.check_schema(path)
        disk_check(
            self.r, "disk_database", os.path.dirname(path), self.p["min_free_percent"], self.p["min_free_gib"]
        )
        self.check_backups(path)

    def _database_path(self):
        """The SQLite file the backend URI opens (a relative one is reported); None when there is none."""
        uri = self.conf["backend"]
        shown = redact_uri(uri)
        if not uri.startswith("sqlite:"):
            self.r.ok(
                "database", f"backend store {shown} is not SQLite: file, journal and backup checks skipped"
            )
            return None
        match = re.match(r"^sqlite(?:\+\w+)?://(/?)([^?]*)", uri)
        if not match or not match.group(2) or match.group(2) == ":memory:":
            self.r.error(
                "database",
                f"backend store {shown} is not a file: every restart loses all runs",
                "use sqlite:////var/lib/mlflow/mlflow.db (four slashes: absolute path)",
            )
            return None
        raw_path = match.group(2)
        cwd = self.cwd or "/"
        if raw_path.startswith("/"):
            path = raw_path
            self.r.ok("database_uri", f"backend store {shown}: absolute path {path}")
        else:
            path = os.path.normpath(os.path.join(cwd, raw_path))
            extra = ""
            if raw_path.startswith(("home/", "var/", "srv/", "opt/", "root/")):
                extra = (
                    f" ('sqlite:///{raw_path}' looks absolute, but SQLAlchemy needs four slashes for that)"
                )
            self.r.error(
                "database_uri",
                f"backend store {shown} is a path relative to the working directory "
                f"({cwd}){extra}: it resolves to {path} now, and a start from any other directory "
                "opens (creates) another, empty database",
                f"use an absolute path (four slashes): --backend-store-uri sqlite:///{path}, and start "
                f"the server from {self.p['unit']}",
            )
        return path

    def _database_owner(self, path, st):
        """Report whether the account the server runs as can write the database and its directory."""
        owner = user_name(st.st_uid)
        run_as = self.proc_user or self.p["account"]
        ident = Identity(run_as)
        parent = lstat(os.path.dirname(path))
        problems = []
        if ident.exists and not ident.can(st, 6):
            problems.append(f"{run_as} (the server) cannot write it")
        if ident.exists and parent and not ident.can(parent, 3):
            problems.append(f"{run_as} cannot create its journal files in {os.path.dirname(path)}")
        text = f"database {path} ({human_bytes(st.st_size)}, {owner_text(st)})"
        if problems:
            self.r.error(
                "database",
                f"{text}: {'; '.join(problems)}",
                f"chown {run_as}: {path} {path}-wal {path}-shm and its directory",
            )
        elif owner == "root" and self.p["account"] != "root":
            self.r.warn(
                "database",
                f"{text} is owned by root: once the server runs as {self.p['account']} "
                "(as it should) it cannot write it",
                f"stop MLflow, chown {self.p['account']}:{self.p['account']} {path}*, then start it as "
                f"{self.p['account']}",
            )
        else:
            self.r.ok("database", text)

    def _journal_mode(self, path):
        """Report the journal mode, read from the database header (no lock, no write)."""
        # journal mode from the header: bytes 18/19 are 2 in WAL mode (no lock, no write)
        head = read_bytes(path, 100) or b""
        if len(head) >= 20 and head.startswith(b"SQLite format 3\x00"):
            if head[18] == 2 and head[19] == 2:
                self.r.ok("journal_mode", "journal_mode is WAL (readers do not block writers)")
            else:
                self.r.warn(
                    "journal_mode",
                    "journal_mode is not WAL (rollback journal): concurrent clients wait "
                    "on each other (8 clients logging batches took 41 s instead of 30-34 s)",
                    f'stop MLflow, back up, then: python3 -c "import sqlite3; '
                    f"sqlite3.connect('{path}').execute('PRAGMA journal_mode=WAL')\" (persists)",
                )
        elif head:
            self.r.error(
                "journal_mode", f"{path} is not an SQLite 3 database", "point the URI at the real database"
            )

    def check_schema(self, path):
        """Check the database's schema revision against the installed MLflow's heads (read-only)."""
        revision, error = None, None
        for suffix in ("?mode=ro", "?mode=ro&immutable=1"):
            try:
                conn = sqlite3.connect(f"file:{urllib.parse.quote(path)}{suffix}", uri=True, timeout=5)
                try:
                    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
                    revision = row[0] if row else ""
                    error = None
                finally:
                    conn.close()
                break
            except sqlite3.Error as exc:
                error = str(exc)
        if error:
            if "no such table" in error:
                self.r.warn(
                    "schema",
                    f"{path} has no MLflow schema (alembic_version missing)",
                    f"mlflow db upgrade sqlite:///{path}",
                )
            else:
                self.r.warn(
                    "schema",
                    f"cannot read the schema revision of {path}: {error}",
                    "check the file is readable and not corrupt (sqlite3 DB 'PRAGMA integrity_check')",
                )
            return
        self.discovered["schema_revision"] = revision
        heads = alembic_heads(self.py["migrations"]) if self.py["migrations"] else set()
        mlflow_version = self.py["mlflow"] or "?"
        if not heads:
            self.r.ok(
                "schema", f"schema revision {revision} (the installed MLflow's revisions were not found)"
            )
        elif revision in heads:
            self.r.ok("schema", f"schema revision {revision} is current for MLflow {mlflow_version}")
        else:
            self.r.error(
                "schema",
                f"schema revision {revision} is not MLflow {mlflow_version}'s "
                f"({', '.join(sorted(heads))}): a restart exits with 'out-of-date database schema'",
                f"back up {path}, then {self.prefix or '.../venv'}/bin/mlflow db upgrade sqlite:///{path}",
            )
