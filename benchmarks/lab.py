"""The benchmark lab: bench hosts, their network, a throwaway SSH key, inventories, ansible-playbook.

The hosts are rootful Podman systemd containers (``bench-*``, network ``mlops-bench``) reached over
real SSH by their bridge address, so that pipelining and ControlPersist matter. ``Lab`` removes them,
the network, the key and the temporary inventories at the end, also on failure (unless ``keep``).
Also here: the helpers every section shares (``sh``, ``log``, ``loadavg``, ``run_script``...).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
SCRIPTS = HERE / "scripts"
LOGS = REPO / ".cache" / "logs"
ANSIBLE_PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"

DISTRO = os.environ.get("MOLECULE_DISTRO", "debian12")
IMAGE = f"localhost/mlops-molecule:{DISTRO}"
NETWORK = "mlops-bench"
# Two host sets: the tuned run (then the throughput benchmarks) and the baseline run.
TUNED = {"server": "bench-server", "artifact": "bench-artifact"}
BASELINE = {"server": "bench-base-server", "artifact": "bench-base-artifact"}
MLFLOW_PORT = 5000
# MLflow listens on the server's loopback; clients come through the TLS proxy (role mlflow_proxy)
# on 443, verified with the toolkit's CA (generated on the controller).
PROXY_PORT = 443
CA_FILE = REPO / "credentials" / "ca" / "ca.crt"
HAND_PORT = 5001
MLFLOW_BIN = "/opt/mlflow/bin/mlflow"


def log(msg: str) -> None:
    """Print a timestamped progress line."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def loadavg() -> list[float]:
    """The machine's 1/5/15-minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def sh(*cmd: str, check: bool = True, timeout: float | None = None, **kw) -> subprocess.CompletedProcess:
    """Run a command, output captured as text; with check, raise on a non-zero exit."""
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


def admin_password(server: str) -> str:
    """The MLflow admin password the mlflow role generated on the controller for this host."""
    return (REPO / "credentials" / server / "admin_password").read_text().strip()


def machine() -> dict:
    """CPUs, memory, kernel, Python, Ansible, image and the load average before the run."""
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


# --- Hosts ------------------------------------------------------------------------------------


class Lab:
    """The benchmark's containers, network, throwaway SSH key and inventories (one temp dir)."""

    def __init__(self, keep: bool, reuse: bool = False) -> None:
        """Nothing created yet but the temp dir; entering the context makes the key and network."""
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
        """Make the throwaway key and the network; forget secrets of an interrupted run."""
        # Secrets left by an interrupted run for these throwaway hosts: start as fresh hosts do.
        for name in {*TUNED.values(), *BASELINE.values()} if not self.reuse else ():
            shutil.rmtree(REPO / "credentials" / name, ignore_errors=True)
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mlops-bench", "-f", str(self.key))
        if sh("podman", "network", "exists", NETWORK, check=False).returncode != 0:
            sh("podman", "network", "create", NETWORK)
        self.network_created = True
        return self

    def __exit__(self, *exc: object) -> None:
        """Remove containers, network, the hosts' generated credentials and the temp dir (unless keep)."""
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
        """Remove these containers (forcefully, no stop timeout) and forget them."""
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
                # The artifact_store role bind-mounts the artifact tree into the SFTP chroot
                # (mount(2) needs CAP_SYS_ADMIN, which Podman does not grant by default); hardened
                # units then also need CAP_SYS_PTRACE (PrivateUsers= with ProtectProc=invisible).
                "--cap-add",
                "SYS_ADMIN,SYS_PTRACE",
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
        """Wait until the container's systemd reports running (or degraded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = sh("podman", "exec", name, "systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(1)
        raise RuntimeError(f"{name}: systemd did not finish booting in {timeout} s")

    def wait_ssh(self, name: str, timeout: float = 60) -> None:
        """Wait until root can log in to the host over SSH with the throwaway key."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ssh(name, "true", check=False).returncode == 0:
                return
            time.sleep(1)
        raise RuntimeError(f"{name}: no SSH login as root in {timeout} s")

    def ssh(self, name: str, command: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a shell command on the host as root over SSH."""
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


# --- ansible-playbook -------------------------------------------------------------------------

TASK_TIME = re.compile(r"^(\S.*?) -{3,} (\d+\.\d+)s$", re.M)
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def ansible_env(lab: Lab, label: str, cfg: str | None) -> dict[str, str]:
    """The environment of one configuration's runs: the project's ansible.cfg (cfg None) or cfg."""
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


def playbook(inv: Path, book: str | Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """ansible-playbook on the inventory from the repository root; raises if it fails."""
    return sh(str(ANSIBLE_PLAYBOOK), "-i", str(inv / "hosts.yml"), *args, str(book), cwd=REPO, env=env)


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


def converge_and_close(inv: Path, env: dict[str, str], label: str) -> dict:
    """converge(), then close the SSH masters of ENV (ansible_env's control path), also when it fails:
    the next run starts without warm connections."""
    try:
        return converge(inv, env, label)
    finally:
        close_masters(Path(env["ANSIBLE_SSH_CONTROL_PATH_DIR"]))
