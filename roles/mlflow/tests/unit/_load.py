"""Load one of the role's Python files (a module or filter plugin) by path, for its unit tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROLE = Path(__file__).resolve().parents[2]


def load(relative: str) -> ModuleType:
    """Import ROLE/RELATIVE (e.g. "files/libexec/mlflow_db.py") as a module.

    Its directory goes first on sys.path, as for a script Python runs: the libexec helpers import
    their neighbours (alembic_revisions.py) that way on the host.
    """
    path = ROLE / relative
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
