"""Load one of the role's Python files (a module or filter plugin) by path, for its unit tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROLE = Path(__file__).resolve().parents[2]


def load(relative: str) -> ModuleType:
    """Import ROLE/RELATIVE (e.g. "library/mlflow_hand_started.py") as a module."""
    path = ROLE / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
