#!/usr/bin/env python3
"""Keep MLflow's basic-auth admin user in line with the role's settings (mlflow role).

MLflow reads MLFLOW_AUTH_ADMIN_PASSWORD only to create the admin user on first start. When the
password variable changes later, this script sets the stored password (and the admin flag) so
the inventory stays the source of truth. Run as the service account, with the venv's python, the
password on stdin (never on the command line or in the environment, where `ps`, sudo's log and
Ansible's -vvv output would show it):

  mlflow_auth_sync.py --db-uri sqlite:////var/lib/mlflow/basic_auth.db --user admin < password-file

Prints {"changed": bool, "created": bool}; never prints the password.

Fast path: when the user already exists as an admin with this password (a re-run), the answer
comes from the auth database's `users` table and werkzeug's password check, without importing
MLflow (seconds of imports on every converge). Anything else (no database, no such user, a
changed password, a schema this script does not know) goes through MLflow's own auth store.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path


def already_in_line(db_uri: str, user: str, password: str) -> bool:
    """True when USER exists, is an admin and has PASSWORD, read straight from the SQLite file."""
    if not db_uri.startswith("sqlite:///"):
        return False
    path = Path(db_uri[len("sqlite:///") :])
    if not path.is_file():
        return False
    try:
        # Imported only when there is an auth database to look at.
        from werkzeug.security import check_password_hash  # noqa: PLC0415

        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            row = conn.execute(
                "SELECT password_hash, is_admin FROM users WHERE username = ?", (user,)
            ).fetchone()
        finally:
            conn.close()
    except (ImportError, sqlite3.Error):
        return False
    return bool(row) and bool(row[1]) and check_password_hash(row[0], password)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db-uri", required=True)
    parser.add_argument("--user", required=True)
    args = parser.parse_args(argv)
    password = sys.stdin.read().strip("\r\n")
    if not password:
        print(json.dumps({"error": "no password on stdin"}))
        return 2

    result = {"changed": False, "created": False, "password_updated": False, "admin_flag_set": False}
    if already_in_line(args.db_uri, args.user, password):
        print(json.dumps(result))
        return 0

    # MLflow is imported only when the admin account must change (seconds of imports).
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore  # noqa: PLC0415

    store = SqlAlchemyStore()
    store.init_db(args.db_uri)
    if not store.has_user(args.user):
        store.create_user(args.user, password, is_admin=True)
        result.update(changed=True, created=True)
    else:
        if not store.authenticate_user(args.user, password):
            store.update_user(args.user, password=password)
            result.update(changed=True, password_updated=True)
        if not store.get_user(args.user).is_admin:
            store.update_user(args.user, is_admin=True)
            result.update(changed=True, admin_flag_set=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
