#!/usr/bin/env python3
"""Adoption helper of the mlflow role (installed into MLFLOW_VENV/libexec, run by the venv's python).

  locations --db PATH    every distinct sftp:// host of the experiments' artifact_location in the
                         (adopted) database, each checked by listing one of those experiments'
                         locations through MLflow's artifact repository for sftp:// (the toolkit's
                         plugin when installed), as the calling user: the service account, with its
                         ~/.ssh/config and known_hosts. Prints one JSON object; exit 1 when a host
                         cannot be read.

Read-only: the database is opened with mode=ro, the artifact stores are only listed.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from urllib.parse import urlsplit

# The collection's plugins/module_utils/helper_cli.py: the role installs it beside this script
# (MLFLOW_VENV/libexec), the directory Python puts first on sys.path for a script.
from helper_cli import command_parser, print_json


def _redact(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.password:
        return uri.replace(f":{parts.password}@", ":***@")
    return uri


def cmd_locations(args: argparse.Namespace) -> tuple[dict, int]:
    conn = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute(
            "SELECT experiment_id, name, artifact_location FROM experiments "
            "WHERE artifact_location LIKE 'sftp:%' ORDER BY experiment_id"
        ).fetchall()
    finally:
        conn.close()
    by_host: dict[str, list[tuple]] = {}
    for exp_id, name, location in rows:
        parts = urlsplit(location)
        key = f"{parts.username or ''}@{parts.hostname or ''}:{parts.port or 22}"
        by_host.setdefault(key, []).append((exp_id, name, location))

    # MLflow is imported only when there is an artifact to look at (seconds of imports).
    from mlflow.store.artifact.artifact_repository_registry import (  # noqa: PLC0415
        get_artifact_repository,
    )

    checked, failed = [], []
    for key, experiments in sorted(by_host.items()):
        exp_id, name, location = experiments[0]
        entry = {
            "target": key,
            "experiments": len(experiments),
            "example": {"experiment_id": str(exp_id), "name": name, "artifact_location": _redact(location)},
        }
        try:
            repo = get_artifact_repository(location)
            entry["store"] = f"{type(repo).__module__}.{type(repo).__name__}"
            entry["entries"] = len(repo.list_artifacts())
            checked.append(entry)
        except Exception as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"[:600]
            failed.append(entry)
    return {"checked": checked, "failed": failed, "sftp_experiments": len(rows)}, (1 if failed else 0)


def main(argv: list[str] | None = None) -> int:
    parser, sub = command_parser(__doc__)
    locations = sub.add_parser("locations")
    locations.add_argument("--db", required=True)
    args = parser.parse_args(argv)
    return print_json(lambda: cmd_locations(args), error_code=2)


if __name__ == "__main__":
    sys.exit(main())
