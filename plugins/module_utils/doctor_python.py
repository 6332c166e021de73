"""The Python environment that runs MLflow: its site-packages and what is installed there."""

from __future__ import annotations

import glob
import os
import re

from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_host import read_text, run


def python_site_dirs(module, argv):
    """site-packages directories of the Python that runs (or would run) MLflow."""
    candidates = []
    for token in argv[:2]:
        if token.startswith("/"):
            candidates.append(token)
    for token in candidates:
        bindir = os.path.dirname(token)
        prefix = os.path.dirname(bindir)
        if os.path.isfile(os.path.join(prefix, "pyvenv.cfg")):
            dirs = [
                d
                for pattern in ("lib/python3*/site-packages", "lib64/python3*/site-packages")
                for d in sorted(glob.glob(os.path.join(prefix, pattern)))
            ]
            if dirs:
                return prefix, dirs
    # Not a venv: ask that interpreter (read-only: -B writes no bytecode, -c imports nothing else).
    python = None
    for token in candidates:
        base = os.path.basename(token)
        if base.startswith("python") and os.access(token, os.X_OK):
            python = token
            break
        head = read_text(token, 256) or ""
        if head.startswith("#!"):
            interp = head[2:].split("\n", 1)[0].split()
            if interp and os.path.basename(interp[0]).startswith("python"):
                python = interp[0]
                break
    if python:
        rc, out, _err = run(
            module, [python, "-B", "-c", "import sys; print('\\n'.join(sys.path))"], timeout=20
        )
        if rc == 0:
            dirs = [
                d
                for d in out.splitlines()
                if d.endswith(("site-packages", "dist-packages")) and os.path.isdir(d)
            ]
            return os.path.dirname(os.path.dirname(python)), dirs
    return None, []


def inspect_python(site_dirs):
    """Versions of mlflow, paramiko and pysftp in SITE_DIRS, the sftp plugin and MLflow's migrations."""
    info = {"mlflow": None, "paramiko": None, "pysftp": None, "plugin": None, "migrations": None}
    for site in site_dirs:
        try:
            names = os.listdir(site)
        except OSError:
            continue
        for name in names:
            lower = name.lower()
            if not lower.endswith((".dist-info", ".egg-info")):
                continue
            base = name.rsplit(".", 1)[0]
            dist, _, version = base.partition("-")
            dist = dist.lower().replace("-", "_")
            if dist == "mlflow" and info["mlflow"] is None:
                info["mlflow"] = version
            elif dist == "paramiko" and info["paramiko"] is None:
                info["paramiko"] = version
            elif dist == "pysftp" and info["pysftp"] is None:
                info["pysftp"] = version
            entry_points = read_text(os.path.join(site, name, "entry_points.txt"), 64 * 1024) or ""
            section = re.search(
                r"^\[mlflow\.artifact_repository\]\s*$(.*?)(?=^\[|\Z)", entry_points, re.M | re.S
            )
            if section and re.search(r"^\s*sftp\s*=", section.group(1), re.M):
                info["plugin"] = f"{dist} {version}".strip()
        versions = os.path.join(site, "mlflow", "store", "db_migrations", "versions")
        if info["migrations"] is None and os.path.isdir(versions):
            info["migrations"] = versions
    return info
