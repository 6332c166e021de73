#!/usr/bin/env python3
"""Loopback SFTP throughput: this plugin vs MLflow's stock (pysftp) store vs OpenSSH ``sftp -b``.

Starts a throwaway sshd on 127.0.0.1 (root needed), then for each round uploads and downloads one
file of --size-mb with every tool, interleaved so that background load hits all of them alike.
Connection setup is excluded for the Python stores (timed around log_artifact/_download_file on a
connected repository); for ``sftp -b`` the time of an empty batch (handshake + login) is subtracted.
Prints one JSON line, then a markdown table. Run with the plugin's venv, e.g.::

    /tmp/plugin-venv/bin/python benchmarks/bench_sftp.py --stock-python /tmp/stock-venv/bin/python
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from sshd_server import Sshd, keygen, sshd_available  # noqa: E402

STOCK_SCRIPT = r"""
import json, os, sys, time
from mlflow.store.artifact.sftp_artifact_repo import SFTPArtifactRepository
uri, local, dest_dir, sub = sys.argv[1:5]
repo = SFTPArtifactRepository(uri)
c, t = time.process_time(), time.perf_counter()
repo.log_artifact(local, sub)
up, up_cpu = time.perf_counter() - t, time.process_time() - c
out = os.path.join(dest_dir, "stock.bin")
remote = sub + "/" + os.path.basename(local)
c, t = time.process_time(), time.perf_counter()
repo._download_file(remote, out)
down, down_cpu = time.perf_counter() - t, time.process_time() - c
import paramiko, mlflow
print(json.dumps({"up": up, "down": down, "up_cpu": up_cpu, "down_cpu": down_cpu,
                  "paramiko": paramiko.__version__, "mlflow": mlflow.__version__}))
"""


def sha256(path: Path) -> str:
    """Hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


class Bench:
    """Holds the sshd, the client HOME and the per-tool timings."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.sshd = Sshd(work / "sshd")
        self.home = work / "home"
        self.remote = work / "remote"
        self.local = work / "payload.bin"
        self.times: dict[str, dict[str, list[float]]] = {}
        self.cpu: dict[str, dict[str, list[float]]] = {}
        self.versions: dict[str, str] = {}
        self.checks: dict[str, bool] = {}
        self.load_start = [round(x, 2) for x in os.getloadavg()]

    def setup(self) -> None:
        """Start sshd; make an RSA client key (the stock store loads nothing else) and known_hosts."""
        self.sshd.setup()
        self.sshd.start()
        ssh = self.home / ".ssh"
        ssh.mkdir(parents=True, mode=0o700)
        self.key = keygen(ssh / "id_rsa", "rsa")
        self.sshd.authorize(Path(f"{self.key}.pub"))
        hostkey = self.sshd.host_public_key("ed25519")
        rsa = self.sshd.host_public_key("rsa")
        host, port = self.sshd.host, self.sshd.port
        # Bracket form for OpenSSH and this plugin, bare form for pysftp (host name only).
        (ssh / "known_hosts").write_text(f"[{host}]:{port} {hostkey}\n{host} {hostkey}\n{host} {rsa}\n")
        self.remote.mkdir()
        with open(self.local, "wb") as fh:
            for _ in range(self.args.size_mb):
                fh.write(os.urandom(1 << 20))
        self.digest = sha256(self.local)
        os.environ["HOME"] = str(self.home)
        os.environ.pop("SSH_AUTH_SOCK", None)

    @property
    def uri(self) -> str:
        return f"sftp://root@{self.sshd.host}:{self.sshd.port}{self.remote}"

    def record(self, tool: str, up: float, down: float, up_cpu: float, down_cpu: float) -> None:
        """Store one round's wall-clock durations and client CPU seconds."""
        entry = self.times.setdefault(tool, {"up": [], "down": []})
        entry["up"].append(up)
        entry["down"].append(down)
        cpu = self.cpu.setdefault(tool, {"up": [], "down": []})
        cpu["up"].append(up_cpu)
        cpu["down"].append(down_cpu)

    def run_plugin(self, rnd: int) -> None:
        """This package, in process, on a connected repository."""
        import mlflow
        import paramiko

        from mlflow_sftp_store import SftpArtifactRepository

        if not hasattr(self, "repo"):
            self.repo = SftpArtifactRepository(self.uri)
            self.repo.list_artifacts()  # connect
            self.versions["plugin"] = f"paramiko {paramiko.__version__}, mlflow {mlflow.__version__}"
        sub = f"plugin-{rnd}"
        c, t = time.process_time(), time.perf_counter()
        self.repo.log_artifact(str(self.local), sub)
        up, up_cpu = time.perf_counter() - t, time.process_time() - c
        out = self.work / "plugin.bin"
        c, t = time.process_time(), time.perf_counter()
        self.repo._download_file(f"{sub}/{self.local.name}", str(out))
        down, down_cpu = time.perf_counter() - t, time.process_time() - c
        self.checks["plugin"] = sha256(self.remote / sub / self.local.name) == self.digest == sha256(out)
        self.record("plugin", up, down, up_cpu, down_cpu)

    def run_paramiko(self, rnd: int) -> None:
        """Reference: paramiko's own SFTPClient.put/get with its default settings."""
        import paramiko

        if not hasattr(self, "client"):
            self.client = paramiko.SSHClient()
            self.client.load_host_keys(str(self.home / ".ssh" / "known_hosts"))
            self.client.connect(
                self.sshd.host, self.sshd.port, "root", key_filename=str(self.key),
                look_for_keys=False, allow_agent=False,
            )  # fmt: skip
            self.sftp = self.client.open_sftp()
        remote = str(self.remote / f"paramiko-{rnd}.bin")
        out = self.work / "paramiko.bin"
        c, t = time.process_time(), time.perf_counter()
        self.sftp.put(str(self.local), remote)
        up, up_cpu = time.perf_counter() - t, time.process_time() - c
        c, t = time.process_time(), time.perf_counter()
        self.sftp.get(remote, str(out))
        down, down_cpu = time.perf_counter() - t, time.process_time() - c
        self.checks["paramiko"] = sha256(out) == self.digest
        self.record("paramiko put/get", up, down, up_cpu, down_cpu)

    def run_stock(self, rnd: int) -> None:
        """MLflow's built-in pysftp store, in a separate venv (it needs pysftp and paramiko<4)."""
        sub = f"stock-{rnd}"
        env = {**os.environ, "HOME": str(self.home)}
        proc = subprocess.run(
            [self.args.stock_python, "-c", STOCK_SCRIPT, self.uri, str(self.local), str(self.work), sub],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"stock store failed:\n{proc.stderr[-3000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        self.versions["stock"] = f"pysftp, paramiko {result['paramiko']}, mlflow {result['mlflow']}"
        self.checks["stock"] = sha256(self.work / "stock.bin") == self.digest
        self.record("mlflow stock sftp", result["up"], result["down"], result["up_cpu"], result["down_cpu"])

    def _sftp_batch(self, commands: str) -> tuple[float, float]:
        batch = self.work / "batch"
        batch.write_text(commands)
        cmd = [
            "sftp", "-q", "-b", str(batch), "-P", str(self.sshd.port), "-i", str(self.key),
            "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={self.home / '.ssh' / 'known_hosts'}",
            "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", f"root@{self.sshd.host}",
        ]  # fmt: skip
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, timeout=600)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return wall, cpu

    def run_openssh(self, rnd: int) -> None:
        """OpenSSH's sftp client in batch mode; handshake time (empty batch) subtracted."""
        remote = self.remote / f"openssh-{rnd}.bin"
        out = self.work / "openssh.bin"
        handshake = min(self._sftp_batch("pwd\n") for _ in range(2))
        up = self._sftp_batch(f'put "{self.local}" "{remote}"\n')
        down = self._sftp_batch(f'get "{remote}" "{out}"\n')
        self.checks["openssh"] = sha256(out) == self.digest
        version = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
        self.versions["openssh"] = version
        self.record(
            "openssh sftp -b",
            up[0] - handshake[0],
            down[0] - handshake[0],
            up[1] - handshake[1],
            down[1] - handshake[1],
        )

    def report(self) -> dict:
        """Medians and bests in MB/s (1 MB = 2^20 bytes) plus ratios."""
        mb = self.args.size_mb
        rows = {}
        for tool, t in self.times.items():
            rows[tool] = {
                d: {
                    "median_mb_s": round(mb / statistics.median(t[d]), 1),
                    "best_mb_s": round(mb / min(t[d]), 1),
                    "runs_s": [round(x, 3) for x in t[d]],
                    "client_cpu_s_per_100mb": round(statistics.median(self.cpu[tool][d]) * 100 / mb, 2),
                }
                for d in ("up", "down")
            }
        ratios = {}
        base = rows.get("plugin")
        for tool, r in rows.items():
            if base and tool != "plugin":
                ratios[f"plugin/{tool}"] = {
                    d: round(base[d]["median_mb_s"] / r[d]["median_mb_s"], 2) for d in ("up", "down")
                }
        return {
            "size_mb": mb,
            "rounds": self.args.rounds,
            "cpus": os.cpu_count(),
            "loadavg_start": self.load_start,
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
            "results": rows,
            "ratios": ratios,
            "integrity_ok": self.checks,
            "versions": self.versions,
        }


def markdown(report: dict) -> str:
    """The report as a markdown table."""
    lines = [
        f"Load average start {report['loadavg_start']}, end {report['loadavg_end']}, {report['cpus']} CPUs.",
        "",
        f"| tool ({report['size_mb']} MB, {report['rounds']} rounds) | upload MB/s (median / best) "
        "| download MB/s (median / best) | plugin ratio up / down (medians) "
        "| client CPU s per 100 MB up / down |",
        "| --- | --- | --- | --- | --- |",
    ]
    for tool, r in report["results"].items():
        ratio = report["ratios"].get(f"plugin/{tool}")
        ratio_text = f"{ratio['up']} / {ratio['down']}" if ratio else "-"
        lines.append(
            f"| {tool} | {r['up']['median_mb_s']} / {r['up']['best_mb_s']} "
            f"| {r['down']['median_mb_s']} / {r['down']['best_mb_s']} | {ratio_text} "
            f"| {r['up']['client_cpu_s_per_100mb']} / {r['down']['client_cpu_s_per_100mb']} |"
        )
    return "\n".join(lines)


def main() -> int:
    """Parse arguments, run the rounds, print JSON and markdown."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--stock-python",
        default=os.environ.get("STOCK_PYTHON", "/tmp/stock-venv/bin/python"),
        help="python of a venv with mlflow, pysftp and paramiko<4 ('' to skip the stock store)",
    )
    args = parser.parse_args()
    if not sshd_available():
        print("needs root, /usr/sbin/sshd and ssh-keygen", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-sftp-"))
    bench = Bench(args, work)
    try:
        bench.setup()
        runners = [bench.run_plugin, bench.run_paramiko, bench.run_openssh]
        if args.stock_python and os.path.exists(args.stock_python):
            runners.insert(1, bench.run_stock)
        else:
            print(f"stock store skipped: {args.stock_python!r} not found", file=sys.stderr)
        for rnd in range(args.rounds):
            for run in runners:
                run(rnd)
            for p in bench.remote.iterdir():  # keep the disk footprint to one round
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        report = bench.report()
        print(json.dumps(report))
        print()
        print(markdown(report))
        return 0 if all(bench.checks.values()) else 1
    finally:
        if hasattr(bench, "client"):
            bench.client.close()
        bench.sshd.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
