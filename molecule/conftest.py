"""Shared testinfra fixtures for every Molecule scenario.

Test hosts are Podman containers, reached through testinfra's podman backend (fast,
no Ansible round trip per command). Scenario tests ask for hosts by container name:

    def test_x(podman_host):
        server = podman_host("keys-server")
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import testinfra

PROJECT_DIR = Path(__file__).resolve().parent.parent
# The doctor's two module tasks (playbooks/doctor.yml), as the JSON callback names them.
DOCTOR_SERVER_TASK = "Server | inspect the tracking server"
DOCTOR_ARTIFACT_TASK = "Artifact | inspect the artifact host"


@pytest.fixture(scope="session")
def podman_host() -> Callable[[str], testinfra.host.Host]:
    cache: dict[str, testinfra.host.Host] = {}

    def get(name: str) -> testinfra.host.Host:
        if name not in cache:
            cache[name] = testinfra.get_host(f"podman://{name}")
        return cache[name]

    return get


def container_ip(name: str) -> str:
    """The first IP address Podman gave the container NAME."""
    out = subprocess.run(["podman", "inspect", name], check=True, capture_output=True, text=True).stdout
    networks = json.loads(out)[0]["NetworkSettings"]["Networks"]
    return next(iter(networks.values()))["IPAddress"]


def run_playbook(
    scenario_dir: Path, playbook: str, *extra: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run a playbook of the scenario against Molecule's inventory for it (ENV: more variables).

    Used by tests that change the system on purpose (rotation, bad input, faults).
    """
    ephemeral = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
    env = {**os.environ, **(env or {})}
    env.setdefault("ANSIBLE_ROLES_PATH", str(PROJECT_DIR / "roles"))
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(PROJECT_DIR / "collections"))
    env["ANSIBLE_CONFIG"] = str(ephemeral / "ansible.cfg")
    cmd = [
        "ansible-playbook",
        "-i",
        str(ephemeral / "inventory"),
        str(scenario_dir / playbook),
        *extra,
    ]
    result = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}")
    return result


def doctor_results(
    result: subprocess.CompletedProcess, host: str
) -> tuple[list[tuple[str, dict]], dict[str, int]]:
    """A doctor run with the ansible.posix.json callback: its module tasks' results on HOST (task
    name, result), in run order, and HOST's play stats."""
    # profile_tasks (enabled by the shared config) prints around the JSON document.
    start = re.search(r"^\{", result.stdout, re.M)
    assert start, result.stdout[-3000:] + result.stderr[-2000:]
    data, _end = json.JSONDecoder().raw_decode(result.stdout[start.start() :])
    results = []
    for play in data["plays"]:
        for task in play["tasks"]:
            name = task["task"]["name"].split(" : ", 1)[-1]
            if name in (DOCTOR_SERVER_TASK, DOCTOR_ARTIFACT_TASK) and host in task["hosts"]:
                results.append((name, task["hosts"][host]))
    return results, data["stats"][host]


def findings_matching(findings: list[dict], level: str, check: str, pattern: str) -> list[dict]:
    """The doctor's FINDINGS of LEVEL and CHECK whose "message -> fix" matches the regex PATTERN."""
    return [
        f
        for f in findings
        if f["level"] == level
        and f["check"] == check
        and re.search(pattern, f["message"] + " -> " + f["fix"])
    ]
