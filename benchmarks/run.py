#!/usr/bin/env python3
"""The toolkit's benchmarks, in one run: `make bench` (or `.venv/bin/python benchmarks/run.py`).

Sections (``--only`` selects some, comma-separated; default all):

  provisioning  wall time of a cold `site.yml` converge on fresh hosts and of the idempotent
                re-run, with the project's ansible.cfg (pipelining, ControlPersist, fact cache)
                and with a baseline config (no pipelining, no ControlPersist, memory fact
                cache) on a second set of fresh hosts; and what one task costs with nothing
                to do (a module, a controller-only and a skipped task), to explain the re-run
  tracking      8 concurrent REST clients doing log_metric and log_batch against the
                provisioned server and against a server started by hand as in the team's notes
                (`mlflow server -h 0.0.0.0 --backend-store-uri sqlite:///mlflow.db ...`, root,
                same venv, same host, other port): requests/s, p50/p99, errors, server RSS
  artifacts     a 100 MB log_artifact and its download through the provisioned server (MLflow
                client, proxied to SFTP) against OpenSSH `sftp` to the artifact host
  permissions   the artifact tree repair on 100,000 files (benchmarks/artifact_permissions/):
                its stored results.json, or a fresh run with --rerun-repair

The hosts are rootful Podman systemd containers (`bench-*`, network `mlops-bench`) reached over
real SSH by their bridge address, so that pipelining and ControlPersist matter. They, the
network, the throwaway key and the temporary inventories are removed at the end, also on
failure (unless --keep). Results: benchmarks/results/results.json and results.md; Ansible logs
in .cache/logs/bench-*.log. Timings are reported, never asserted: each target is "met" or
"not met" in the results.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import report
import requests

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
# Scripts run on the bench hosts (`python3 -`, the source on stdin).
SCRIPTS = HERE / "scripts"
LOGS = REPO / ".cache" / "logs"
ANSIBLE_PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"

DISTRO = os.environ.get("MOLECULE_DISTRO", "debian12")
IMAGE = f"localhost/mlops-molecule:{DISTRO}"
NETWORK = "mlops-bench"
# Two host sets: the tuned run (then the throughput benchmarks) and the baseline run.
TUNED = {"server": "bench-server", "artifact": "bench-artifact"}
BASELINE = {"server": "bench-base-server", "artifact": "bench-base-artifact"}
SECTIONS = ("provisioning", "tracking", "artifacts", "permissions")
MLFLOW_PORT = 5000
HAND_PORT = 5001
MLFLOW_BIN = "/opt/mlflow/bin/mlflow"

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


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def sh(*cmd: str, check: bool = True, timeout: float | None = None, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, **kw)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} failed ({result.returncode}): {result.stderr[-1500:]}")
    return result


def run_script(
    container: str, script: str, *args: str, python: str = "python3"
) -> subprocess.CompletedProcess:
    """Run benchmarks/scripts/<script> in a container with its python, the source on stdin."""
    source = (SCRIPTS / script).read_text()
    return sh("podman", "exec", "-i", container, python, "-", *args, input=source)


def pct(values: list[float], q: float) -> float:
    """Percentile (nearest rank) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# --- Hosts ------------------------------------------------------------------------------------


class Lab:
    """The benchmark's containers, network, throwaway SSH key and inventories (one temp dir)."""

    def __init__(self, keep: bool, reuse: bool = False) -> None:
        self.keep = keep
        self.reuse = reuse
        self.reused = False
        self.tmp = Path(tempfile.mkdtemp(prefix="mlops-bench-"))
        self.key = self.tmp / "id_ed25519"
        self.created: list[str] = []
        self.network_created = False
        self.ips: dict[str, str] = {}
        self.ssh_opts = [
            "-i",
            str(self.key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
        ]

    def __enter__(self) -> Lab:
        # Secrets left by an interrupted run for these throwaway hosts: start as fresh hosts do.
        for name in {*TUNED.values(), *BASELINE.values()} if not self.reuse else ():
            shutil.rmtree(REPO / "credentials" / name, ignore_errors=True)
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mlops-bench", "-f", str(self.key))
        if sh("podman", "network", "exists", NETWORK, check=False).returncode != 0:
            sh("podman", "network", "create", NETWORK)
        self.network_created = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.keep:
            log(f"--keep: leaving {', '.join(self.created)}, network {NETWORK} and {self.tmp}")
            return
        self.remove(self.created)
        if self.network_created:
            sh("podman", "network", "rm", "-f", NETWORK, check=False)
        # Secrets the mlflow role generated on the controller for these throwaway hosts.
        for name in {*TUNED.values(), *BASELINE.values()}:
            shutil.rmtree(REPO / "credentials" / name, ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        log("containers, network and temporary files removed")

    def remove(self, names: list[str]) -> None:
        if names:
            sh("podman", "rm", "-f", "-t", "0", *names, check=False)
        for name in names:
            if name in self.created:
                self.created.remove(name)

    def start(self, hosts: dict[str, str]) -> None:
        """Fresh systemd containers, mounted like playbooks/sandbox.yml, with root's key authorized."""
        names = list(hosts.values())
        running = [
            sh("podman", "inspect", n, "--format", "{{.State.Running}}", check=False).stdout.strip() == "true"
            for n in names
        ]
        self.reused = self.reuse and all(running)
        if not self.reused:
            # Leftovers of an interrupted run of this benchmark (same names, never anyone else's).
            sh("podman", "rm", "-f", "-t", "0", *names, check=False)
        for name in names if not self.reused else []:
            sh(
                "podman",
                "run",
                "-d",
                "--name",
                name,
                "--hostname",
                name,
                "--systemd=always",
                "--network",
                NETWORK,
                "-v",
                "/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/host-ca-bundle.crt:ro",
                "-v",
                f"{REPO}/.cache/wheelhouse/{DISTRO}:/wheelhouse:ro",
                "-v",
                f"{REPO}/molecule/_harness/pip.conf:/etc/pip.conf:ro",
                IMAGE,
                "/lib/systemd/systemd",
            )
            self.created.append(name)
        pub = (self.key.parent / f"{self.key.name}.pub").read_text()
        for name in names:
            if self.reused and name not in self.created:
                self.created.append(name)
            self.wait_systemd(name)
            sh(
                "podman",
                "exec",
                "-i",
                name,
                "sh",
                "-c",
                "install -d -m 700 /root/.ssh && cat >> /root/.ssh/authorized_keys"
                " && chmod 600 /root/.ssh/authorized_keys",
                input=pub,
            )
            fmt = '{{(index .NetworkSettings.Networks "' + NETWORK + '").IPAddress}}'
            self.ips[name] = sh("podman", "inspect", name, "--format", fmt).stdout.strip()
            self.wait_ssh(name)

    @staticmethod
    def wait_systemd(name: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = sh("podman", "exec", name, "systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(1)
        raise RuntimeError(f"{name}: systemd did not finish booting in {timeout} s")

    def wait_ssh(self, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ssh(name, "true", check=False).returncode == 0:
                return
            time.sleep(1)
        raise RuntimeError(f"{name}: no SSH login as root in {timeout} s")

    def ssh(self, name: str, command: str, check: bool = True) -> subprocess.CompletedProcess:
        return sh("ssh", *self.ssh_opts, f"root@{self.ips[name]}", command, check=check, timeout=120)

    def inventory(self, hosts: dict[str, str], label: str) -> Path:
        """A two-host inventory with the sandbox's groups and group_vars, reached over SSH."""
        inv = self.tmp / f"inventory-{label}"
        shutil.copytree(REPO / "inventory" / "sandbox" / "group_vars", inv / "group_vars")
        common = " ".join(self.ssh_opts[2:])  # the key goes in its own variable
        data = {
            "all": {
                "vars": {
                    "ansible_connection": "ssh",
                    "ansible_user": "root",
                    "ansible_ssh_private_key_file": str(self.key),
                    "ansible_ssh_common_args": common,
                },
                "children": {
                    "mlflow_tracking_server": {
                        "hosts": {hosts["server"]: {"ansible_host": self.ips[hosts["server"]]}}
                    },
                    "mlflow_artifact_store": {
                        "hosts": {hosts["artifact"]: {"ansible_host": self.ips[hosts["artifact"]]}}
                    },
                    "mlflow_clients": {"hosts": {}},
                },
            }
        }
        # JSON is YAML: Ansible's YAML inventory plugin reads it.
        (inv / "hosts.yml").write_text(json.dumps(data, indent=2) + "\n")
        return inv


# --- Provisioning -----------------------------------------------------------------------------

TASK_TIME = re.compile(r"^(\S.*?) -{3,} (\d+\.\d+)s$", re.M)
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def converge(inv: Path, env: dict[str, str], label: str) -> dict:
    """One site.yml run: wall time and the recap's counts; its log goes to .cache/logs/."""
    LOGS.mkdir(parents=True, exist_ok=True)
    logfile = LOGS / f"bench-{label}.log"
    log(f"site.yml: {label} (log: {logfile.relative_to(REPO)})")
    load0 = loadavg()
    started = time.perf_counter()
    with open(logfile, "w") as fh:
        rc = subprocess.run(
            [str(ANSIBLE_PLAYBOOK), "-i", str(inv / "hosts.yml"), "site.yml"],
            cwd=REPO,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode
    wall = time.perf_counter() - started
    text = logfile.read_text()
    # profile_tasks' summary, slowest first: "role : task name ------ 12.34s".
    slowest = [
        {"task": m[1].strip(), "s": float(m[2])} for m in TASK_TIME.finditer(text.split("PLAY RECAP")[-1])
    ]
    recap = {
        m[1]: {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
        for m in RECAP.finditer(text)
    }
    result = {
        "wall_s": round(wall, 1),
        "rc": rc,
        "changed": sum(h["changed"] for h in recap.values()),
        "failed": sum(h["failed"] + h["unreachable"] for h in recap.values()),
        "recap": recap,
        "slowest_tasks": slowest[:8],
        "load_before": load0,
        "load_after": loadavg(),
        "log": str(logfile.relative_to(REPO)),
    }
    log(f"  {label}: {wall:.1f} s, rc={rc}, changed={result['changed']}, failed={result['failed']}")
    if rc != 0:
        raise RuntimeError(f"site.yml {label} failed (rc={rc}); see {logfile}")
    return result


def close_masters(cp_dir: Path) -> None:
    """Close ControlPersist masters so that a re-run starts without warm SSH connections."""
    for sock in cp_dir.glob("*"):
        sh("ssh", "-S", str(sock), "-O", "exit", "bench", check=False)


def ansible_env(lab: Lab, label: str, cfg: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update({"ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", "PY_COLORS": "0"})
    # Per-task times in the log and the results (same small cost for every configuration).
    env["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.timer,ansible.posix.profile_tasks"
    env["PATH"] = f"{REPO / '.venv' / 'bin'}:{env.get('PATH', '')}"
    # Same for every configuration: this run's own SSH control sockets (closed between runs).
    env["ANSIBLE_SSH_CONTROL_PATH_DIR"] = str(lab.tmp / f"cp-{label}")
    if cfg is None:
        # The project's ansible.cfg (found in the working directory), with a fact cache of
        # this run's own, empty at the cold converge.
        env["ANSIBLE_CACHE_PLUGIN_CONNECTION"] = str(lab.tmp / f"facts-{label}")
    else:
        path = lab.tmp / f"ansible-{label}.cfg"
        path.write_text(cfg)
        env["ANSIBLE_CONFIG"] = str(path)
    return env


def bench_provisioning(lab: Lab, hosts: dict[str, str], label: str, cfg: str | None) -> dict:
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
    out = {"cold": converge(inv, env, f"{label}-cold")}
    close_masters(lab.tmp / f"cp-{label}")
    out["rerun"] = converge(inv, env, f"{label}-rerun")
    close_masters(lab.tmp / f"cp-{label}")
    if label == "tuned":
        try:
            out["task_floor"] = task_floor(lab, inv, env)
        except Exception as exc:  # noqa: BLE001 - an explanation, not a target: reported, not fatal
            out["task_floor"] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    out["inventory"] = inv
    return out


FLOOR_TASKS = 40
# What one task costs with nothing to do, on the same hosts and settings as the re-run: a module
# (`stat` as root on both hosts: one AnsiballZ run per host), a controller-only `assert`, and a
# skipped task; each playbook minus an empty one (Ansible's start-up), per task.
FLOOR_KINDS = {
    "module": "ansible.builtin.stat:\n        path: /etc/hostname",
    "controller": "ansible.builtin.assert:\n        that: true\n        quiet: true",
    "skipped": "ansible.builtin.stat:\n        path: /etc/hostname\n      when: false",
}


def task_floor(lab: Lab, inv: Path, env: dict[str, str]) -> dict:
    log(f"task floor: {FLOOR_TASKS} tasks of each kind on both hosts")
    walls: dict[str, float] = {}
    for kind, body in {"empty": None, **FLOOR_KINDS}.items():
        tasks = (
            [f"    - name: {kind} {i}\n      {body}" for i in range(FLOOR_TASKS)]
            if body
            else ["    - name: nothing\n      ansible.builtin.meta: noop"]
        )
        book = lab.tmp / f"floor-{kind}.yml"
        book.write_text(
            "---\n- name: floor\n  hosts: all\n  gather_facts: false\n  become: true\n  tasks:\n"
            + "\n".join(tasks)
            + "\n"
        )
        started = time.perf_counter()
        sh(str(ANSIBLE_PLAYBOOK), "-i", str(inv / "hosts.yml"), str(book), cwd=REPO, env=env)
        walls[kind] = time.perf_counter() - started
    out = {
        "tasks": FLOOR_TASKS,
        "wall_s": {k: round(v, 1) for k, v in walls.items()},
        "per_task_s": {k: round((walls[k] - walls["empty"]) / FLOOR_TASKS, 3) for k in FLOOR_KINDS},
    }
    # A kept copy of the stat module as Ansible sends it, run on the server three times.
    server = TUNED["server"]
    keep = {**env, "ANSIBLE_KEEP_REMOTE_FILES": "1", "ANSIBLE_PIPELINING": "false"}
    sh(str(ANSIBLE_PLAYBOOK), "-i", str(inv / "hosts.yml"), "-l", server, str(lab.tmp / "floor-module.yml"),
       cwd=REPO, env=keep)  # fmt: skip
    probe = run_script(server, "module_cpu.py").stdout
    out["module_on_host"] = json.loads(probe.strip().splitlines()[-1])
    sh("podman", "exec", server, "sh", "-c", "rm -rf /root/.ansible/tmp/ansible-tmp-*", check=False)
    log(f"  per task: {out['per_task_s']}; stat module on the host: {out['module_on_host']}")
    return out


# --- Tracking throughput ----------------------------------------------------------------------


class Api:
    """Plain MLflow REST calls (requests), one keep-alive session per thread."""

    def __init__(self, base: str, auth: tuple[str, str] | None) -> None:
        self.requests = requests
        self.base = base
        self.auth = auth
        self.local = threading.local()

    def session(self):
        if not hasattr(self.local, "s"):
            self.local.s = self.requests.Session()
            self.local.s.auth = self.auth
        return self.local.s

    def post(self, path: str, body: dict) -> dict:
        r = self.session().post(f"{self.base}/api/2.0/mlflow/{path}", json=body, timeout=120)
        r.raise_for_status()
        return r.json()

    def wait_health(self, timeout: float = 240) -> float | None:
        """Seconds until /health answers, None if it did not within timeout."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            with contextlib.suppress(Exception):
                if self.requests.get(f"{self.base}/health", timeout=5).status_code == 200:
                    return round(time.monotonic() - started, 1)
            time.sleep(1)
        return None


def load_phase(
    api: Api, run_ids: list[str], op: str, per_client: int, batch: int, *, seconds: float = 0
) -> dict:
    """Each of len(run_ids) threads sends up to per_client requests on its own run, and stops
    sending after `seconds` (0: no limit) on a machine too loaded to finish them; all timed."""
    stamp = int(time.time() * 1000)

    def body(run_id: str, i: int) -> tuple[str, dict]:
        if op == "log_metric":
            return "runs/log-metric", {
                "run_id": run_id,
                "key": "loss",
                "value": 1.0 / (i + 1),
                "timestamp": stamp + i,
                "step": i,
            }
        metrics = [
            {"key": f"m{j % 10}", "value": float(j), "timestamp": stamp + i, "step": i * batch + j}
            for j in range(batch)
        ]
        return "runs/log-batch", {"run_id": run_id, "metrics": metrics}

    def client(run_id: str) -> tuple[list[float], list[str]]:
        latencies, errors = [], []
        session = api.session()
        for i in range(per_client):
            if seconds and time.perf_counter() - started > seconds:
                break
            path, payload = body(run_id, i)
            t = time.perf_counter()
            try:
                r = session.post(f"{api.base}/api/2.0/mlflow/{path}", json=payload, timeout=60)
                if r.status_code != 200:
                    errors.append(f"HTTP {r.status_code}: {r.text[:200]}")
            except Exception as exc:  # noqa: BLE001 - every failure is counted, whatever its kind
                errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
            latencies.append(time.perf_counter() - t)
        return latencies, errors

    load0 = loadavg()
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(run_ids)) as pool:
        results = list(pool.map(client, run_ids))
    wall = time.perf_counter() - started
    latencies = [x for lat, _ in results for x in lat]
    errors = [e for _, errs in results for e in errs]
    return {
        "op": op,
        "clients": len(run_ids),
        "time_limited": len(latencies) < per_client * len(run_ids),
        "requests": len(latencies),
        "metrics_per_request": 1 if op == "log_metric" else batch,
        "wall_s": round(wall, 2),
        "rps": round((len(latencies) - len(errors)) / wall, 2),
        "p50_ms": round(pct(latencies, 50) * 1000, 1),
        "p99_ms": round(pct(latencies, 99) * 1000, 1),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:3],
        "load_before": load0,
        "load_after": loadavg(),
    }


def proctree(container: str, pid: int, action: str = "measure", pids: tuple[int, ...] = ()) -> dict:
    """scripts/proctree.py in the container: the tree under pid (RSS, PSS, pids); see its docstring."""
    return json.loads(run_script(container, "proctree.py", str(pid), action, *map(str, pids)).stdout)


def stop_tree(container: str, pid: int, grace: float = 20) -> None:
    """SIGTERM to the whole process tree, SIGKILL to what is left after `grace` seconds."""
    pids = proctree(container, pid, "kill")["pids"]
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        alive = sh(
            "podman",
            "exec",
            container,
            "sh",
            "-c",
            " ".join(f"test -e /proc/{p} && echo {p};" for p in pids),
            check=False,
        ).stdout.split()
        if not alive:
            return
        time.sleep(1)
    proctree(container, pid, "kill9", tuple(int(p) for p in alive))


def start_hand_server(container: str) -> int:
    """`mlflow server` as in the team's notes: root, from a shell, in a fresh directory."""
    script = (
        "mkdir -p /root/tracking-server && cd /root/tracking-server && echo $$ > server.pid && "
        f"exec {MLFLOW_BIN} server -h 0.0.0.0 -p {HAND_PORT} --backend-store-uri sqlite:///mlflow.db "
        "--default-artifact-root $(pwd)/artifacts > server.log 2>&1"
    )
    # Telemetry off, like the provisioned server, so that neither sends data out during the run.
    # It runs from the provisioned venv, where the role's plugin package registers its bulk-write
    # sqlite store: turned off here, so this is MLflow's own SqlAlchemyStore, as in a plain install.
    env = ("-e", "MLFLOW_DISABLE_TELEMETRY=true", "-e", "MLFLOW_SQLITE_BULK_METRICS=false")
    sh("podman", "exec", "-d", *env, container, "bash", "-c", script)
    for _ in range(50):
        pid = sh(
            "podman", "exec", container, "cat", "/root/tracking-server/server.pid", check=False
        ).stdout.strip()
        if pid:
            return int(pid)
        time.sleep(0.2)
    raise RuntimeError("the hand-run server did not start")


def setup_runs(api: Api, args: argparse.Namespace) -> list[str]:
    """An experiment and one run per client, then an untimed warm-up of every worker."""
    exp = api.post("experiments/create", {"name": f"bench-{int(time.time())}"})["experiment_id"]
    body = {"experiment_id": exp, "start_time": int(time.time() * 1000)}
    with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
        created = pool.map(lambda _: api.post("runs/create", body), range(args.clients))
        run_ids = [r["run"]["info"]["run_id"] for r in created]
    load_phase(api, run_ids, "log_metric", 5, 1, seconds=20)
    load_phase(api, run_ids, "log_batch", 1, args.batch_size, seconds=20)
    return run_ids


def bench_tracking(lab: Lab, args: argparse.Namespace) -> dict:
    server = TUNED["server"]
    ip = lab.ips[server]
    password = (REPO / "credentials" / server / "admin_password").read_text().strip()
    servers = {
        "provisioned": Api(f"http://{ip}:{MLFLOW_PORT}", ("admin", password)),
        "hand-run": Api(f"http://{ip}:{HAND_PORT}", None),
    }
    pids = {
        "provisioned": int(
            sh(
                "podman", "exec", server, "systemctl", "show", "-p", "MainPID", "--value", "mlflow"
            ).stdout.strip()
        )
    }
    log("tracking: starting the hand-run server on port 5001")
    pids["hand-run"] = start_hand_server(server)
    out: dict = {"servers": {}, "phases": []}
    try:
        auth = run_script(server, "auth_cost.py", python=f"{MLFLOW_BIN.rsplit('/', 1)[0]}/python")
        out["auth_check"] = json.loads(auth.stdout)
        # Not fatal: a server that never gets healthy is measured all the same (as errors).
        out["hand_run_health_s"] = servers["hand-run"].wait_health()
        out["provisioned_health_s"] = servers["provisioned"].wait_health()
        runs = {}
        for name, api in servers.items():
            out["servers"][name] = {"url": api.base, "auth": api.auth is not None, "rss": []}
            try:
                runs[name] = setup_runs(api, args)
            except Exception as exc:  # noqa: BLE001 - reported; the other server is still measured
                out["servers"][name]["error"] = f"set-up failed: {type(exc).__name__}: {str(exc)[:300]}"
                log(f"tracking: {name}: {out['servers'][name]['error']}")
            out["servers"][name]["rss"].append(proctree(server, pids[name]))
        # Interleaved, alternating order: background load on the shared machine hits both alike.
        plan = [
            ("log_metric", "provisioned"),
            ("log_metric", "hand-run"),
            ("log_batch", "hand-run"),
            ("log_batch", "provisioned"),
        ]
        for op, name in [(op, name) for op, name in plan if name in runs]:
            per_client = args.metric_requests if op == "log_metric" else args.batch_requests
            log(f"tracking: {name} {op}, {args.clients} clients x {per_client}")
            phase = load_phase(
                servers[name], runs[name], op, per_client, args.batch_size, seconds=args.phase_seconds
            )
            phase["server"] = name
            out["phases"].append(phase)
            out["servers"][name]["rss"].append(proctree(server, pids[name]))
            log(
                f"  {phase['rps']} req/s, p50 {phase['p50_ms']} ms, p99 {phase['p99_ms']} ms, "
                f"errors {phase['errors']}, RSS {out['servers'][name]['rss'][-1]['rss_mb']} MB"
            )
        for name in servers:
            samples = out["servers"][name]["rss"]
            out["servers"][name]["rss_max_mb"] = max(s["rss_mb"] for s in samples)
            out["servers"][name]["pss_max_mb"] = max(s["pss_mb"] for s in samples)
            out["servers"][name]["processes"] = samples[-1]["processes"]
    finally:
        # uvicorn kills a worker that misses its 5 s health ping (still importing on a busy host).
        deaths = sh(
            "podman", "exec", server, "grep", "-c", "died", "/root/tracking-server/server.log", check=False
        )
        out["hand_run_worker_deaths"] = int(deaths.stdout.strip() or 0)
        # The store each server ran: the plugin's store logs one line per worker when it starts.
        for name, cmd in (
            ("hand-run", "cat /root/tracking-server/server.log"),
            ("provisioned", "journalctl -u mlflow --no-pager -o cat"),
        ):
            text = sh("podman", "exec", server, "sh", "-c", cmd, check=False).stdout
            bulk = "bulk metric writes" in text
            out["servers"].setdefault(name, {})["store"] = (
                "plugin (bulk metric writes)" if bulk else "MLflow's SqlAlchemyStore"
            )
        stop_tree(server, pids["hand-run"])
    return out


# --- Artifact throughput ----------------------------------------------------------------------


@contextlib.contextmanager
def environ(**values: str):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def bench_artifacts(lab: Lab, args: argparse.Namespace) -> dict:
    server, artifact = TUNED["server"], TUNED["artifact"]
    size = args.artifact_mb * (1 << 20)
    payload = lab.tmp / "payload.bin"
    with open(payload, "wb") as fh:
        for _ in range(args.artifact_mb):
            fh.write(os.urandom(1 << 20))
    digest = sha256(payload)
    down = lab.tmp / "down"
    password = (REPO / "credentials" / server / "admin_password").read_text().strip()
    remote_dir = "/var/tmp/bench-sftp"  # noqa: S108 - on the throwaway artifact host
    lab.ssh(artifact, f"mkdir -p {remote_dir}")
    sftp = ["sftp", *lab.ssh_opts, "-b", "-", f"root@{lab.ips[artifact]}"]

    def sftp_batch(commands: str) -> float:
        t = time.perf_counter()
        sh(*sftp, input=commands, timeout=600)
        return time.perf_counter() - t

    with environ(
        MLFLOW_TRACKING_USERNAME="admin",
        MLFLOW_TRACKING_PASSWORD=password,
        MLFLOW_DISABLE_TELEMETRY="true",
        MLFLOW_HTTP_REQUEST_TIMEOUT="600",
    ):
        # Imported here only: MLflow takes seconds to import, and only this section uses it.
        from mlflow.tracking import MlflowClient  # noqa: PLC0415

        client = MlflowClient(f"http://{lab.ips[server]}:{MLFLOW_PORT}")
        exp = client.create_experiment(f"bench-artifacts-{int(time.time())}")
        run_id = client.create_run(exp).info.run_id
        rounds = []
        for rnd in range(args.artifact_rounds):
            log(f"artifacts: round {rnd + 1}/{args.artifact_rounds}")
            r: dict = {}
            t = time.perf_counter()
            client.log_artifact(run_id, str(payload), f"round{rnd}")
            r["mlflow_up_s"] = time.perf_counter() - t
            shutil.rmtree(down, ignore_errors=True)
            down.mkdir()
            t = time.perf_counter()
            got = client.download_artifacts(run_id, f"round{rnd}/{payload.name}", str(down))
            r["mlflow_down_s"] = time.perf_counter() - t
            r["mlflow_ok"] = sha256(Path(got)) == digest
            r["sftp_handshake_s"] = sftp_batch("pwd\n")
            r["sftp_up_s"] = sftp_batch(f"put {payload} {remote_dir}/round{rnd}.bin\n")
            (down / "sftp.bin").unlink(missing_ok=True)
            r["sftp_down_s"] = sftp_batch(f"get {remote_dir}/round{rnd}.bin {down / 'sftp.bin'}\n")
            r["sftp_ok"] = sha256(down / "sftp.bin") == digest
            rounds.append({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()})
            log(f"  {rounds[-1]}")
    lab.ssh(artifact, f"rm -rf {remote_dir}", check=False)

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    mb = size / (1 << 20)
    hs = med("sftp_handshake_s")
    out = {
        "size_mb": args.artifact_mb,
        "rounds": rounds,
        "mlflow_up_mbps": round(mb / med("mlflow_up_s"), 1),
        "mlflow_down_mbps": round(mb / med("mlflow_down_s"), 1),
        "sftp_up_mbps": round(mb / med("sftp_up_s"), 1),
        "sftp_down_mbps": round(mb / med("sftp_down_s"), 1),
        # Without the connection set-up (an empty batch's time), as the plugin's own benchmark does.
        "sftp_up_mbps_net": round(mb / max(med("sftp_up_s") - hs, 1e-3), 1),
        "sftp_down_mbps_net": round(mb / max(med("sftp_down_s") - hs, 1e-3), 1),
        "checksums_ok": all(r["mlflow_ok"] and r["sftp_ok"] for r in rounds),
    }
    out["up_ratio"] = round(out["mlflow_up_mbps"] / out["sftp_up_mbps"], 2)
    out["up_ratio_net"] = round(out["mlflow_up_mbps"] / out["sftp_up_mbps_net"], 2)
    out["down_ratio"] = round(out["mlflow_down_mbps"] / out["sftp_down_mbps"], 2)
    return out


# --- Permission repair ------------------------------------------------------------------------


def bench_permissions(rerun: bool) -> dict:
    stored = HERE / "artifact_permissions" / "results.json"
    if rerun:
        fresh = RESULTS / "permissions.json"
        log("permissions: bench_repair.py --no-file-module --repeat 1")
        sh(
            sys.executable,
            str(HERE / "artifact_permissions" / "bench_repair.py"),
            "--no-file-module",
            "--repeat",
            "1",
            "--output",
            str(fresh),
            cwd=REPO,
            timeout=1800,
        )
        data, source = json.loads(fresh.read_text()), str(fresh.relative_to(REPO))
    else:
        data, source = json.loads(stored.read_text()), str(stored.relative_to(REPO))
    return {"source": source, "rerun": rerun, **data}


# --- Main -------------------------------------------------------------------------------------


def machine() -> dict:
    mem = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        mem = int(fh.readline().split()[1])
    ansible = sh(str(ANSIBLE_PLAYBOOK), "--version", check=False).stdout.splitlines()
    return {
        "cpus": os.cpu_count(),
        "mem_gb": round(mem / (1 << 20), 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ansible": ansible[0].replace("[", "").replace("]", "") if ansible else "?",
        "image": IMAGE,
        "load_before": loadavg(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}"
    )
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--metric-requests", type=int, default=200, help="log_metric requests per client")
    parser.add_argument("--batch-requests", type=int, default=10, help="log_batch requests per client")
    parser.add_argument(
        "--batch-size", type=int, default=1000, help="metrics per log_batch (MLflow's max: 1000)"
    )
    parser.add_argument(
        "--phase-seconds",
        type=float,
        default=60,
        help="stop sending after this long per load phase (0: no limit)",
    )
    parser.add_argument("--artifact-mb", type=int, default=100)
    parser.add_argument("--artifact-rounds", type=int, default=5)
    parser.add_argument(
        "--no-stock", action="store_true", help="skip the extra re-run with Ansible's stock ssh_args"
    )
    parser.add_argument(
        "--rerun-repair",
        action="store_true",
        help="run bench_repair.py (--no-file-module --repeat 1) instead of using its stored results",
    )
    parser.add_argument("--keep", action="store_true", help="leave the containers and network up (debugging)")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse running hosts left by --keep (no cold converge)"
    )
    parser.add_argument("--output", default=str(RESULTS / "results.json"))
    args = parser.parse_args()
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    if only - set(SECTIONS):
        parser.error(f"unknown section(s): {', '.join(sorted(only - set(SECTIONS)))}")
    if os.geteuid() != 0:
        parser.error("run as root (rootful Podman containers reached by their bridge address)")

    # A SIGTERM (make interrupted, CI timeout) still runs the clean-up in the finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    res: dict = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["benchmarks/run.py", *sys.argv[1:]]),
        "sections": [s for s in SECTIONS if s in only],
        "machine": machine(),
        "errors": [],
    }
    log(f"sections: {', '.join(res['sections'])}; load average {res['machine']['load_before']}")
    try:
        if only & {"provisioning", "tracking", "artifacts"}:
            run_hosts(res, only, args)
    except Exception as exc:  # noqa: BLE001 - reported in the results, the rest still written
        res["errors"].append(f"{type(exc).__name__}: {exc}")
        log(f"ERROR: {exc}")
    if "permissions" in only:
        try:
            res["permissions"] = bench_permissions(args.rerun_repair)
        except Exception as exc:  # noqa: BLE001
            res["errors"].append(f"permissions: {type(exc).__name__}: {exc}")
    res["machine"]["load_after"] = loadavg()
    res["total_s"] = round(time.perf_counter() - started, 1)
    res["targets"] = report.targets(res)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    md = report.markdown(res)
    out.with_suffix(".md").write_text(md)
    print(md)
    log(f"written: {out} and {out.with_suffix('.md')}")
    return 1 if res["errors"] else 0


def run_hosts(res: dict, only: set[str], args: argparse.Namespace) -> None:
    """Everything that needs the containers, inside one Lab (removed at the end, also on failure)."""
    with Lab(args.keep, args.reuse) as lab:
        prov: dict = {}
        # The tuned converge also provisions the hosts the throughput benchmarks use.
        prov["tuned"] = bench_provisioning(lab, TUNED, "tuned", None)
        if "provisioning" in only and not lab.reused:
            res["provisioning"] = prov
        if "tracking" in only:
            try:
                res["tracking"] = {"clients": args.clients, **bench_tracking(lab, args)}
            except Exception as exc:  # noqa: BLE001 - the next sections still run
                res["errors"].append(f"tracking: {type(exc).__name__}: {exc}")
                log(f"ERROR tracking: {exc}")
        if "artifacts" in only:
            try:
                res["artifacts"] = bench_artifacts(lab, args)
            except Exception as exc:  # noqa: BLE001
                res["errors"].append(f"artifacts: {type(exc).__name__}: {exc}")
                log(f"ERROR artifacts: {exc}")
        if "provisioning" in only:
            # The tuned hosts are done with; the baseline gets fresh ones of its own.
            lab.remove(list(TUNED.values()))
            prov["baseline"] = bench_provisioning(lab, BASELINE, "baseline", BASELINE_CFG)
            if not args.no_stock:
                env = ansible_env(lab, "stock", STOCK_CFG)
                prov["stock"] = {"rerun": converge(prov["baseline"]["inventory"], env, "stock-rerun")}
                close_masters(lab.tmp / "cp-stock")
            prov["ratio"] = {
                "cold": round(prov["baseline"]["cold"]["wall_s"] / prov["tuned"]["cold"]["wall_s"], 2),
                "rerun": round(prov["baseline"]["rerun"]["wall_s"] / prov["tuned"]["rerun"]["wall_s"], 2),
            }
        for p in prov.values():
            if isinstance(p, dict):
                p.pop("inventory", None)


if __name__ == "__main__":
    sys.exit(main())
