"""Strategy: the idempotent re-run with and without Mitogen, and what the cold converge spends in pip.

Issue #17's benchmark. On fresh TUNED hosts: a cold `site.yml` converge with the project's
ansible.cfg (linear strategy), whose profile_tasks timing gives the share of the MLflow install
(the mlflow role's `venv_requirements` task: ~95 wheels); then the idempotent re-run, alternately
with ansible.cfg and with ansible-mitogen.cfg (the opt-in Mitogen strategy, as a user runs it:
``ANSIBLE_CONFIG=ansible-mitogen.cfg``), ``--strategy-rounds`` times each. Then, on the artifact host
(no MLflow running there), pip against uv installing the same requirement into a fresh venv from the
same wheelhouse and index (scripts/install_timing.py). Finally a cold converge under Mitogen on a
second set of fresh hosts (BASELINE names), its re-run under Mitogen and one with ansible.cfg: does
the whole site converge, prove itself and stay idempotent under it. A failing Mitogen run is
recorded with its first error lines, not raised: whether it passes is one of the results.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
import time
from pathlib import Path

from lab import (
    BASELINE,
    LOGS,
    REPO,
    TASK_TIME,
    TUNED,
    Lab,
    ansible_env,
    converge_and_close,
    log,
    run_script,
    sh,
)

MITOGEN_CFG = REPO / "ansible-mitogen.cfg"
# The mlflow role's install task (roles/mlflow/tasks/install.yml), as profile_tasks names it.
PIP_TASK = re.compile(r"^mlflow : Install MLflow into its virtualenv")
# What the role installs with the sandbox's settings (basic-auth on, the SFTP plugin on: no pysftp).
REQUIREMENT = "mlflow[auth]=={version}"


def mitogen_env(lab: Lab, label: str) -> dict[str, str]:
    """The environment of a Mitogen run: ansible-mitogen.cfg instead of ansible.cfg.

    Mitogen's SSH transport sets StrictHostKeyChecking from Ansible's host_key_checking before the
    inventory's ssh_common_args (ssh keeps the first value), so the throwaway hosts, which the
    inventory already reaches with StrictHostKeyChecking=no, need it off here too.
    """
    env = ansible_env(lab, label, None)
    env["ANSIBLE_CONFIG"] = str(MITOGEN_CFG)
    env["ANSIBLE_HOST_KEY_CHECKING"] = "False"
    return env


def task_seconds(logfile: Path, pattern: re.Pattern[str]) -> float | None:
    """A task's time from the profile_tasks summary of an ansible-playbook log (None: not listed)."""
    text = logfile.read_text().split("PLAY RECAP")[-1]
    return next((float(m[2]) for m in TASK_TIME.finditer(text) if pattern.search(m[1].strip())), None)


def attempt(lab: Lab, inv: Path, env: dict[str, str], label: str) -> dict:
    """One site.yml run as converge() does, closing its SSH masters after; a failure is recorded."""
    try:
        return converge_and_close(inv, env, label)
    except RuntimeError as exc:
        logfile = LOGS / f"bench-{label}.log"
        text = logfile.read_text() if logfile.exists() else ""
        fatal = [ln[:300] for ln in text.splitlines() if ln.startswith(("fatal:", "[ERROR]", "ERROR!"))]
        log(f"  {label}: FAILED: {fatal[:1]}")
        return {"error": str(exc)[:300], "first_errors": fatal[:5], "log": str(logfile.relative_to(REPO))}


def install_timing(lab: Lab, host: str, args: argparse.Namespace, version: str) -> dict:
    """pip against uv on the host (scripts/install_timing.py), uv copied in from this venv."""
    del lab
    uv = REPO / ".venv" / "bin" / "uv"
    # `python3 -m venv` needs python3-venv (ensurepip), which the image lacks and the mlflow role
    # installs only on the tracking server: installed here first, untimed.
    sh("podman", "exec", host, "sh", "-c", "apt-get update -qq && apt-get install -y -qq python3-venv")
    sh("podman", "cp", str(uv), f"{host}:/usr/local/bin/uv")
    req = REQUIREMENT.format(version=version)
    log(f"install timing on {host}: pip against uv, {req}, {args.install_rounds} round(s)")
    started = time.perf_counter()
    res = run_script(host, "install_timing.py", req, json.dumps({"rounds": args.install_rounds}))
    rows = json.loads(res.stdout.strip().splitlines()[-1])
    for row in rows:
        log(f"  {row}")
    return {
        "host": host,
        "requirement": req,
        "rows": rows,
        "wall_s": round(time.perf_counter() - started, 1),
    }


def mlflow_version() -> str:
    """The role's default mlflow_version (roles/mlflow/defaults/main.yml)."""
    text = (REPO / "roles" / "mlflow" / "defaults" / "main.yml").read_text()
    return re.search(r'^mlflow_version:\s*"?([^"\s]+)"?', text, re.M)[1]


def run(lab: Lab, args: argparse.Namespace) -> dict:
    """The section's results: linear cold + alternating re-runs, pip against uv, Mitogen cold."""
    out: dict = {"mitogen": importlib.metadata.version("mitogen")}
    lab.start(TUNED)
    inv = lab.inventory(TUNED, "strategy")
    linear, mitogen = ansible_env(lab, "linear", None), mitogen_env(lab, "mitogen")
    cold = attempt(lab, inv, linear, "strategy-linear-cold")
    if "error" in cold:
        raise RuntimeError(f"the cold converge with ansible.cfg failed: {cold['first_errors']}")
    pip_s = task_seconds(LOGS / "bench-strategy-linear-cold.log", PIP_TASK)
    out["linear_cold"] = {**cold, "pip_task_s": pip_s, "pip_share": round(pip_s / cold["wall_s"], 2)}
    log(f"  MLflow install task: {pip_s} s of {cold['wall_s']} s")
    out["reruns"] = {"linear": [], "mitogen": []}
    for i in range(args.strategy_rounds):
        for name, env in (("linear", linear), ("mitogen", mitogen)):
            out["reruns"][name].append(attempt(lab, inv, env, f"strategy-{name}-rerun{i + 1}"))
    try:
        out["install"] = install_timing(lab, TUNED["artifact"], args, mlflow_version())
    except Exception as exc:  # noqa: BLE001 - the Mitogen cold converge still runs
        # The error keeps the script's progress (one JSON row per variant on stderr).
        out["install"] = {"error": f"{type(exc).__name__}: {str(exc)[:3000]}"}
    # The Mitogen cold converge gets fresh hosts of its own.
    lab.remove(list(TUNED.values()))
    lab.start(BASELINE)
    inv2 = lab.inventory(BASELINE, "strategy-mitogen")
    mitogen2, linear2 = mitogen_env(lab, "mitogen-cold"), ansible_env(lab, "linear-after", None)
    cold_m = attempt(lab, inv2, mitogen2, "strategy-mitogen-cold")
    if "error" in cold_m:
        # A second attempt on the same hosts: does Mitogen get through once the first one's
        # side effects (e.g. python3-apt, auto-installed by the apt module) are in place?
        cold_m["second_attempt"] = attempt(lab, inv2, mitogen2, "strategy-mitogen-cold-2")
        if "error" not in cold_m["second_attempt"]:
            log_2 = LOGS / "bench-strategy-mitogen-cold-2.log"
            cold_m["second_attempt"]["pip_task_s"] = task_seconds(log_2, PIP_TASK)
    else:
        cold_m["pip_task_s"] = task_seconds(LOGS / "bench-strategy-mitogen-cold.log", PIP_TASK)
    out["mitogen_cold"] = cold_m
    if "error" not in cold_m.get("second_attempt", cold_m):
        out["mitogen_cold_rerun"] = attempt(lab, inv2, mitogen2, "strategy-mitogen-cold-rerun")
        out["mitogen_cold_linear_rerun"] = attempt(lab, inv2, linear2, "strategy-mitogen-cold-linear-rerun")
    lab.remove(list(BASELINE.values()))
    return out
