"""Shared testinfra fixtures for every Molecule scenario.

Test hosts are Podman containers, reached through testinfra's podman backend (fast,
no Ansible round trip per command). Scenario tests ask for hosts by container name:

    def test_x(podman_host):
        server = podman_host("keys-server")
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import testinfra

PROJECT_DIR = Path(__file__).resolve().parent.parent


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
