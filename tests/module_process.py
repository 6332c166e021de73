"""Run one of the collection's modules as Ansible runs it, for the roles' unit tests.

Test code only (not under plugins/: the collection tarball leaves tests/ out). Imported as
`ansible_collections.mlops.mlflow.tests.module_process` (pytest's pythonpath has `collections`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def run_module(module: Path, args: dict, tmp_path: Path) -> dict:
    """MODULE as a process with an arguments file, the way AnsiballZ hands them over; its JSON result."""
    argfile = tmp_path / "args.json"
    argfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    out = subprocess.run(
        [sys.executable, str(module), str(argfile)], capture_output=True, text=True, check=False
    )
    return json.loads(out.stdout)
