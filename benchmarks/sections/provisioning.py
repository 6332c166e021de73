"""Provisioning: wall time of a cold `site.yml` converge and of the idempotent re-run.

With the project's ansible.cfg (tuned: pipelining, ControlPersist, fact cache), then with a baseline
config (no pipelining, no ControlPersist, memory fact cache) on a second set of fresh hosts, and a
re-run with Ansible's stock defaults; plus what one task costs with nothing to do (a module, a
controller-only and a skipped task), to explain the re-run. The tuned converge also provisions the
hosts the tracking and artifacts sections use, so it runs first (``run_tuned``) and the rest after
them (``run_baseline``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from lab import (
    BASELINE,
    REPO,
    TUNED,
    Lab,
    ansible_env,
    converge_and_close,
    log,
    playbook,
    run_script,
    sh,
)

# Ansible's settings for the baseline: its defaults, minus ControlPersist (Ansible's built-in
# ssh_args are "-C -o ControlMaster=auto -o ControlPersist=60s"; ssh_args empty turns it off).
# roles_path is the only project setting kept.
BASELINE_CFG = f"""\
[defaults]
roles_path = {REPO / "roles"}
retry_files_enabled = False

[ssh_connection]
pipelining = False
ssh_args =
"""
# Ansible's stock defaults (ControlPersist 60s from its built-in ssh_args), for one more re-run.
STOCK_CFG = f"""\
[defaults]
roles_path = {REPO / "roles"}
retry_files_enabled = False
"""

FLOOR_TASKS = 40
# What one task costs with nothing to do, on the same hosts and settings as the re-run: a module
# (`stat` as root on both hosts: one AnsiballZ run per host), a controller-only `assert`, and a
# skipped task; each playbook minus an empty one (Ansible's start-up), per task.
FLOOR_KINDS: dict[str, dict] = {
    "module": {"ansible.builtin.stat": {"path": "/etc/hostname"}},
    "controller": {"ansible.builtin.assert": {"that": True, "quiet": True}},
    "skipped": {"ansible.builtin.stat": {"path": "/etc/hostname"}, "when": False},
}


def provision(lab: Lab, hosts: dict[str, str], label: str, cfg: str | None) -> dict:
    """Fresh hosts, then a cold converge and the re-run with this configuration (cfg None: the project's)."""
    env = ansible_env(lab, label, cfg)
    started = time.perf_counter()
    lab.start(hosts)
    log(
        f"{label}: hosts {', '.join(f'{n} {lab.ips[n]}' for n in hosts.values())} up in "
        f"{time.perf_counter() - started:.0f} s"
    )
    inv = lab.inventory(hosts, label)
    if lab.reused:
        # --reuse (development): hosts kept by --keep are converged already.
        return {"cold": None, "rerun": None, "inventory": inv}
    out = {"cold": converge_and_close(inv, env, f"{label}-cold")}
    out["rerun"] = converge_and_close(inv, env, f"{label}-rerun")
    if label == "tuned":
        try:
            out["task_floor"] = task_floor(lab, inv, env)
        except Exception as exc:  # noqa: BLE001 - an explanation, not a target: reported, not fatal
            out["task_floor"] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    out["inventory"] = inv
    return out


def floor_book(kind: str, body: dict | None) -> list[dict]:
    """A play on all hosts, as root, no facts: FLOOR_TASKS tasks of this kind (body None: one noop)."""
    tasks = (
        [{"name": f"{kind} {i}", **body} for i in range(FLOOR_TASKS)]
        if body
        else [{"name": "nothing", "ansible.builtin.meta": "noop"}]
    )
    return [{"name": "floor", "hosts": "all", "gather_facts": False, "become": True, "tasks": tasks}]


def task_floor(lab: Lab, inv: Path, env: dict[str, str]) -> dict:
    """Per-task cost of each FLOOR_KINDS kind, and the CPU one `stat` module run takes on the server."""
    log(f"task floor: {FLOOR_TASKS} tasks of each kind on both hosts")
    walls: dict[str, float] = {}
    for kind, body in {"empty": None, **FLOOR_KINDS}.items():
        book = lab.tmp / f"floor-{kind}.yml"
        # JSON is YAML: ansible-playbook reads it.
        book.write_text(json.dumps(floor_book(kind, body), indent=2) + "\n")
        started = time.perf_counter()
        playbook(inv, book, env)
        walls[kind] = time.perf_counter() - started
    out = {
        "tasks": FLOOR_TASKS,
        "wall_s": {k: round(v, 1) for k, v in walls.items()},
        "per_task_s": {k: round((walls[k] - walls["empty"]) / FLOOR_TASKS, 3) for k in FLOOR_KINDS},
    }
    # A kept copy of the stat module as Ansible sends it, run on the server three times.
    server = TUNED["server"]
    keep = {**env, "ANSIBLE_KEEP_REMOTE_FILES": "1", "ANSIBLE_PIPELINING": "false"}
    playbook(inv, lab.tmp / "floor-module.yml", keep, "-l", server)
    probe = run_script(server, "module_cpu.py").stdout
    out["module_on_host"] = json.loads(probe.strip().splitlines()[-1])
    sh("podman", "exec", server, "sh", "-c", "rm -rf /root/.ansible/tmp/ansible-tmp-*", check=False)
    log(f"  per task: {out['per_task_s']}; stat module on the host: {out['module_on_host']}")
    return out


def run_tuned(lab: Lab) -> dict:
    """The tuned configuration on the TUNED hosts; they stay up, provisioned, for the other sections."""
    return {"tuned": provision(lab, TUNED, "tuned", None)}


def run_baseline(lab: Lab, args: argparse.Namespace, prov: dict) -> dict:
    """Baseline (fresh BASELINE hosts) and stock re-run, added to run_tuned's prov with the ratios."""
    # The tuned hosts are done with; the baseline gets fresh ones of its own.
    lab.remove(list(TUNED.values()))
    prov["baseline"] = provision(lab, BASELINE, "baseline", BASELINE_CFG)
    if not args.no_stock:
        env = ansible_env(lab, "stock", STOCK_CFG)
        prov["stock"] = {"rerun": converge_and_close(prov["baseline"]["inventory"], env, "stock-rerun")}
    prov["ratio"] = {
        "cold": round(prov["baseline"]["cold"]["wall_s"] / prov["tuned"]["cold"]["wall_s"], 2),
        "rerun": round(prov["baseline"]["rerun"]["wall_s"] / prov["tuned"]["rerun"]["wall_s"], 2),
    }
    return prov
