"""Helpers for the full-stack tests: run things on the client as a training user."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from conftest import run_playbook

SCENARIO_DIR = Path(__file__).resolve().parent.parent
FILES = SCENARIO_DIR / "files"
PROJECT_DIR = SCENARIO_DIR.parent.parent
SERVER, ARTIFACT, CLIENT = "default-server", "default-artifact", "default-client"
CLIENT_PY = "/opt/mlflow-client/bin/python"
# site.yml re-runs at -vvv on the converged stack (direct artifact mode since test_40): test_45's
# "the next run changes nothing" is one, and test_60 searches its output for secrets.
VERBOSE_RUNS: list[subprocess.CompletedProcess] = []


def verbose_rerun() -> subprocess.CompletedProcess:
    """site.yml at -vvv, in the direct artifact mode test_40 switched to; kept in VERBOSE_RUNS."""
    result = run_playbook(
        SCENARIO_DIR, str(PROJECT_DIR / "site.yml"), "-vvv", "-e", "mlflow_artifacts_mode=direct"
    )
    VERBOSE_RUNS.append(result)
    return result


def copy_to(container: str, name: str) -> str:
    dest = f"/tmp/{name}"
    subprocess.run(["podman", "cp", str(FILES / name), f"{container}:{dest}"], check=True)
    subprocess.run(["podman", "exec", container, "chmod", "0644", dest], check=True)
    return dest


def as_trainer(host, command: str, user: str = "mlops"):
    """Run COMMAND in a login shell of USER on HOST (loads ~/.mlflow/mlflow.env)."""
    return host.run(f"su - {user} -c {json.dumps(command)}")


def train(client, experiment: str, artifact_location: str = "") -> dict:
    script = copy_to(CLIENT, "train.py")
    result = as_trainer(client, f"{CLIENT_PY} {script} {experiment} {artifact_location}".strip())
    assert result.rc == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def read_back(client, run_ids: list[str]) -> dict:
    script = copy_to(CLIENT, "check_artifacts.py")
    result = as_trainer(client, f"{CLIENT_PY} {script} {' '.join(run_ids)}")
    assert result.rc == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def wait_until(predicate, timeout: float, interval: float = 2.0):
    """Poll PREDICATE until it returns a truthy value or TIMEOUT seconds pass."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    return last
