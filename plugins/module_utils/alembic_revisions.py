"""The alembic revisions of an MLflow installation, read from its migration files without running them.

Written once for two places: the doctor (a module: is the database's schema current?) and the
mlflow role's database helper ``mlflow_db.py``, which runs on the tracking host with the MLflow
venv's python. The role copies this file beside that helper (``MLFLOW_VENV/libexec``), so it
imports nothing from Ansible and nothing beyond the standard library.
"""

from __future__ import annotations

import os
import re

# `revision = "..."` / `down_revision = ...`, with or without a type annotation.
_REVISION = re.compile(r"^revision\s*(?::[^=]*)?=\s*['\"]([0-9A-Za-z_]+)['\"]", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*(?::[^=]*)?=\s*(.*)$", re.MULTILINE)
_QUOTED = re.compile(r"['\"]([0-9A-Za-z_]+)['\"]")


def revisions(versions_dir) -> tuple[set[str], set[str]]:
    """(head revisions, every revision) of the alembic scripts in VERSIONS_DIR.

    Read from the scripts' ``revision`` / ``down_revision`` lines, as alembic does, but without
    executing them: a head is a revision that no other revision follows. Both sets are empty
    when the directory cannot be read or holds no revision.
    """
    known: set[str] = set()
    parents: set[str] = set()
    try:
        names = sorted(os.listdir(versions_dir))
    except OSError:
        return set(), set()
    for name in names:
        if not name.endswith(".py"):
            continue
        try:
            with open(os.path.join(versions_dir, name), encoding="utf-8", errors="replace") as handle:
                text = handle.read(256 * 1024)
        except OSError:
            continue
        revision = _REVISION.search(text)
        if revision is None:
            continue
        known.add(revision.group(1))
        down = _DOWN_REVISION.search(text)
        if down:
            parents.update(_QUOTED.findall(down.group(1)))
    return known - parents, known
